"""Posting to the ledger. The only writer of transactions, legs and balances."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext

from django.db import IntegrityError, connection
from django.db import transaction as db_transaction
from django.utils import timezone

from accounts.audit import Actor, actor_label
from core.db import insert_unless_taken
from core.exceptions import InvalidInput
from core.money import places
from ledger.enums import NON_NEGATIVE_KINDS, AccountKind, TransactionKind
from ledger.exceptions import AlreadyReversed, InsufficientHoldings, UnbalancedTransaction
from ledger.models import Account, Instrument, Leg, Transaction


@dataclass(frozen=True)
class LegSpec:
    account: Account
    instrument: str
    amount: Decimal


def account_for(*, kind: str, client=None, key: str | None = None, name: str | None = None) -> Account:
    """The account of ``kind`` for a client (or for the broker when ``client`` is None). ``key``
    distinguishes several accounts of one kind for one client (one per facility, say)."""
    owner = client.reference if client is not None else "firm"
    code = _account_code(kind, owner, key)
    account = Account.objects.filter(code=code).first()
    if account is None:
        label = AccountKind(kind).label
        account, _ = Account.objects.get_or_create(
            code=code,
            defaults={
                "kind": kind,
                "client": client,
                "name": name or f"{label} — {owner}{f' {key}' if key else ''}",
            },
        )
    return account


def _account_code(kind: str, owner: str, key: str | None) -> str:
    return ":".join(part for part in (kind, owner, key) if part)


def firm_account_code(kind: str) -> str:
    """The code of the firm's account of ``kind`` (``firm_account``), for a query that looks it up."""
    return _account_code(kind, "firm", None)


def firm_account(kind: str) -> Account:
    return account_for(kind=kind)


def instrument_get_or_create(*, code: str, kind: str, decimals: int) -> Instrument:
    instrument, created = Instrument.objects.get_or_create(
        code=code, defaults={"kind": kind, "decimals": decimals}
    )
    if not created and (instrument.kind, instrument.decimals) != (kind, decimals):
        raise InvalidInput(
            f"Instrument {code} already exists as {instrument.kind} with {instrument.decimals} decimals.",
            code="instrument_mismatch",
        )
    return instrument


def _check_legs(legs: list[LegSpec], known: dict[str, int] | None = None) -> None:
    if len(legs) < 2:
        raise UnbalancedTransaction("A transaction needs at least two legs.")
    codes = {leg.instrument for leg in legs}
    if known is not None and codes <= known.keys():
        instruments = {code: Instrument(code=code, decimals=known[code]) for code in codes}
    else:
        instruments = {i.code: i for i in Instrument.objects.filter(code__in=codes)}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if not isinstance(leg.amount, Decimal) or not leg.amount.is_finite():
            raise InvalidInput(f"Leg amount {leg.amount!r} is not a finite Decimal.")
        if leg.amount == 0:
            raise InvalidInput("A leg cannot be zero.")
        instrument = instruments.get(leg.instrument)
        if instrument is None:
            raise InvalidInput(f"There is no instrument {leg.instrument}.", code="unknown_instrument")
        with localcontext(prec=80):
            too_precise = leg.amount != leg.amount.quantize(places(instrument.decimals))
        if too_precise:
            raise InvalidInput(
                f"{leg.amount} {leg.instrument} has more than the {instrument.decimals} decimal places "
                f"{leg.instrument} allows.",
                code="too_precise",
            )
        totals[leg.instrument] += leg.amount
    unbalanced = {code: total for code, total in totals.items() if total != 0}
    if unbalanced:
        detail = ", ".join(f"{code} {total:+f}" for code, total in sorted(unbalanced.items()))
        raise UnbalancedTransaction(f"The legs do not sum to zero: {detail}.")


def _apply_to_balances(legs: list[LegSpec]) -> None:
    """Add the legs to the balance projection, then refuse a holding below zero. On PostgreSQL the database
    has added them already, as the legs were inserted (ledger migration 0003): the balances are only read
    back. Elsewhere (the embedded SQLite) with one upsert here."""
    deltas: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    accounts: dict[int, Account] = {}
    for leg in legs:
        deltas[(leg.account.pk, leg.instrument)] += leg.amount
        accounts[leg.account.pk] = leg.account
    rows = [
        (account_id, code, amount) for (account_id, code), amount in sorted(deltas.items()) if amount != 0
    ]
    if not rows:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            checked = [
                (a, c) for a, c, amount in rows if amount < 0 and accounts[a].kind in NON_NEGATIVE_KINDS
            ]
            if not checked:
                return
            cursor.execute(
                "SELECT account_id, instrument_id, amount FROM ledger_balance "
                "WHERE (account_id, instrument_id) IN (SELECT * FROM unnest(%s::bigint[], %s::text[]))",
                [[a for a, _ in checked], [c for _, c in checked]],
            )
        else:
            values = ", ".join(["(%s, %s, %s)"] * len(rows))
            cursor.execute(
                f"INSERT INTO ledger_balance (account_id, instrument_id, amount) VALUES {values} "
                "ON CONFLICT (account_id, instrument_id) DO UPDATE SET amount = ledger_balance.amount + "
                "excluded.amount RETURNING account_id, instrument_id, amount",
                [value for row in rows for value in row],
            )
        results = cursor.fetchall()
    for account_id, code, amount in results:
        account = accounts[account_id]
        if account.kind in NON_NEGATIVE_KINDS and Decimal(amount) < 0:
            held = Decimal(amount) - deltas[(account_id, code)]
            raise InsufficientHoldings(
                f"{account.name} holds {held.normalize():f} {code}; "
                f"{-deltas[(account_id, code)].normalize():f} {code} cannot be taken from it.",
                details={"instrument": code, "held": str(held)},
            )


def transaction_post(
    *,
    kind: str,
    legs: Iterable[LegSpec],
    memo: str,
    actor: Actor | None,
    idempotency_key: str | None = None,
    reverses: Transaction | None = None,
    before_legs: Callable[[Transaction], None] | None = None,
    savepoint: bool = True,
    instrument_decimals: dict[str, int] | None = None,
) -> Transaction:
    """Post a balanced transaction. With an ``idempotency_key`` that was used before, the earlier
    transaction is returned and nothing is written (``before_legs`` is not called); the legs are checked
    first all the same.

    ``before_legs``, if given, is called with the transaction once its row is written and before its legs
    are: what refers to the transaction (a drawdown's row, its audit event) and any lock or check the posting
    must wait for go there. The legs are then the last statement, so the balance rows they lock until the
    commit (the firm's cash settlement, which every drawdown and repayment moves) are held for as short a time
    as the caller allows. Whatever ``before_legs`` raises rolls the transaction's row back with it.

    The posting runs in a savepoint of its own, so that a caller may catch its refusal (``InsufficientHoldings``,
    an ``IntegrityError``) and go on. ``savepoint=False`` leaves that to a caller that has a savepoint of its
    own and lets every error through (a drawdown): two round trips fewer, one of them while the posting's
    balance rows are locked.

    ``instrument_decimals`` (code → decimal places), read by the caller from the instruments' rows in this
    transaction, spares the posting its own look-up of them; an instrument not in it is looked up."""
    with db_transaction.atomic(savepoint=savepoint):
        return _post(
            kind=kind,
            legs=list(legs),
            memo=memo,
            actor=actor,
            idempotency_key=idempotency_key,
            reverses=reverses,
            before_legs=before_legs,
            instrument_decimals=instrument_decimals,
        )


def _post(
    *, kind, legs, memo, actor, idempotency_key, reverses, before_legs, instrument_decimals=None
) -> Transaction:
    _check_legs(legs, instrument_decimals)
    if kind not in TransactionKind.values:
        raise InvalidInput(f"{kind!r} is not a kind of ledger transaction.")
    txn = Transaction(
        kind=kind,
        memo=memo[:300],
        actor_label=actor_label(actor),
        idempotency_key=idempotency_key,
        reverses=reverses,
    )
    if idempotency_key is None:
        txn.save()
    elif not _insert_unless_key_used(txn):
        return Transaction.objects.get(idempotency_key=idempotency_key)
    if before_legs is not None:
        before_legs(txn)
    Leg.objects.bulk_create(
        [
            Leg(transaction=txn, account=leg.account, instrument_id=leg.instrument, amount=leg.amount)
            for leg in legs
        ]
    )
    _apply_to_balances(legs)
    return txn


def _insert_unless_key_used(txn: Transaction) -> bool:
    """Insert ``txn``, or nothing when its idempotency key was used: one statement rather than a look-up and
    an insert. A posting holding the key uncommitted is waited for, and its transaction is then the one
    returned."""
    txn.posted_at = timezone.now()
    return insert_unless_taken(
        txn, ["kind", "memo", "posted_at", "actor_label", "reverses", "idempotency_key"], ["idempotency_key"]
    )


@db_transaction.atomic
def transaction_reverse(*, transaction: Transaction, actor: Actor | None, memo: str = "") -> Transaction:
    """Correct a transaction by posting its mirror image. A transaction is reversed at most once."""
    # Not locked (the application may not lock rows of an append-only table: that takes UPDATE privilege):
    # one reversal per transaction is a unique key, and a second reversal racing this one fails on it.
    original = Transaction.objects.get(pk=transaction.pk)
    if original.reverses_id is not None:
        raise AlreadyReversed(f"Transaction #{original.pk} is itself a reversal; post the correction anew.")
    already = AlreadyReversed(f"Transaction #{original.pk} has already been reversed.")
    if Transaction.objects.filter(reverses=original).exists():
        raise already
    legs = [
        LegSpec(account=leg.account, instrument=leg.instrument_id, amount=-leg.amount)
        for leg in original.legs.select_related("account")
    ]
    try:
        return transaction_post(
            kind=TransactionKind.REVERSAL,
            legs=legs,
            memo=memo or f"Reversal of #{original.pk}: {original.memo}",
            actor=actor,
            reverses=original,
        )
    except IntegrityError:
        if Transaction.objects.filter(reverses=original).exists():  # the race was lost
            raise already from None
        raise
