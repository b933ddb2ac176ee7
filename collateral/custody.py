"""The custody feed: a client's free (unpledged) holdings at the broker, received and released once per
custody reference, for automatic top-ups to draw on (docs/forced-sales-and-top-ups.md)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.audit import Actor, audit_event_record
from accounts.models import Client
from collateral.enums import CustodyMovementKind
from collateral.exceptions import CustodyReferenceConflict, InsufficientCustodyHoldings
from collateral.models import Asset, CustodyMovement
from collateral.selectors import custody_account_of
from collateral.services import parse_quantity
from core.exceptions import InvalidInput
from core.locks import lock_one
from core.money import ZERO
from ledger.enums import AccountKind, TransactionKind
from ledger.models import Account
from ledger.selectors import balance_of
from ledger.services import LegSpec, account_for, firm_account, transaction_post

REFERENCE_MAX_LENGTH = CustodyMovement._meta.get_field("external_reference").max_length


def custody_account(client: Client) -> Account:
    """The client's free-holdings account, opened on first use."""
    return account_for(kind=AccountKind.CUSTODY, client=client, name=f"Free custody holdings of {client}")


def _reference(external_reference: str) -> str:
    reference = (external_reference or "").strip()
    if not reference:
        raise InvalidInput(
            "external_reference: the custody system's reference is needed; each is recorded once per client.",
            details={"external_reference": ["required"]},
        )
    if len(reference) > REFERENCE_MAX_LENGTH:
        raise InvalidInput(
            f"external_reference: at most {REFERENCE_MAX_LENGTH} characters.",
            details={"external_reference": ["too long"]},
        )
    return reference


def _earlier(
    client: Client, reference: str, kind: str, asset: Asset, quantity: Any
) -> CustodyMovement | None:
    """The movement already recorded under this reference, if it is the same one; a refusal if it was
    another."""
    earlier = CustodyMovement.objects.filter(client=client, external_reference=reference).first()
    if earlier is None:
        return None
    amount = parse_quantity(asset, quantity)
    if (earlier.kind, earlier.asset_id, earlier.quantity) != (kind, asset.symbol, amount):
        raise CustodyReferenceConflict(
            f"The custody reference {reference} was already recorded for {client}: "
            f"{earlier.get_kind_display().lower()}, {earlier.quantity.normalize():f} {earlier.asset_id} "
            f"(movement #{earlier.pk}); this describes a different movement.",
            details={"movement": earlier.pk},
        )
    return earlier


def _record(
    *, client: Client, kind: str, asset: Asset, amount, actor: Actor, reference: str, legs, memo: str
) -> CustodyMovement:
    txn = transaction_post(
        kind=TransactionKind.CUSTODY_IN
        if kind == CustodyMovementKind.RECEIVED
        else TransactionKind.CUSTODY_OUT,
        legs=legs,
        memo=memo,
        actor=actor,
    )
    movement = CustodyMovement.objects.create(
        client=client,
        kind=kind,
        asset=asset,
        quantity=amount,
        transaction=txn,
        external_reference=reference,
        actor_label=txn.actor_label,
    )
    audit_event_record(
        actor=actor,
        action=f"custody.{kind}",
        target=movement,
        after={
            "client": client.reference,
            "asset": asset.symbol,
            "quantity": str(amount),
            "external_reference": reference,
            "transaction": txn.pk,
        },
    )
    return movement


@transaction.atomic
def custody_holding_receive(
    *, client: Client, asset: Asset, quantity: Any, actor: Actor, external_reference: str
) -> CustodyMovement:
    """An asset arrives in the client's free custody holdings (custody clearing → the client's custody
    account). Any asset on the list may be held free; whether it may be pledged is decided when it is."""
    reference = _reference(external_reference)
    earlier = _earlier(client, reference, CustodyMovementKind.RECEIVED, asset, quantity)
    if earlier is not None:
        return earlier
    amount = parse_quantity(asset, quantity)
    return _record(
        client=client,
        kind=CustodyMovementKind.RECEIVED,
        asset=asset,
        amount=amount,
        actor=actor,
        reference=reference,
        legs=[
            LegSpec(custody_account(client), asset.symbol, amount),
            LegSpec(firm_account(AccountKind.CUSTODY_CLEARING), asset.symbol, -amount),
        ],
        memo=f"Received into free custody: {amount.normalize():f} {asset.symbol} for {client}",
    )


@transaction.atomic
def custody_holding_release(
    *, client: Client, asset: Asset, quantity: Any, actor: Actor, external_reference: str
) -> CustodyMovement:
    """An asset leaves the client's free custody holdings (the client's custody account → custody
    clearing). Refused when the client does not hold that much free. The custody account is locked, so
    that a release and an automatic top-up never both take the same holding."""
    reference = _reference(external_reference)
    earlier = _earlier(client, reference, CustodyMovementKind.RELEASED, asset, quantity)
    if earlier is not None:
        return earlier
    amount = parse_quantity(asset, quantity)
    account = custody_account_of(client)  # not opened by a refusal: a refusal writes nothing
    held = ZERO
    if account is not None:
        account = lock_one(Account, account.pk)
        held = balance_of(account, asset.symbol)
    if amount > held:
        raise InsufficientCustodyHoldings(
            _(
                "%(client)s holds %(held)s %(asset)s free in custody; %(quantity)s %(asset)s cannot be released."
            )
            % {
                "client": client,
                "held": f"{max(held, ZERO).normalize():f}",
                "asset": asset.symbol,
                "quantity": f"{amount.normalize():f}",
            },
            details={"held": str(held)},
        )
    return _record(
        client=client,
        kind=CustodyMovementKind.RELEASED,
        asset=asset,
        amount=amount,
        actor=actor,
        reference=reference,
        legs=[
            LegSpec(account, asset.symbol, -amount),
            LegSpec(firm_account(AccountKind.CUSTODY_CLEARING), asset.symbol, amount),
        ],
        memo=f"Released from free custody: {amount.normalize():f} {asset.symbol} for {client}",
    )
