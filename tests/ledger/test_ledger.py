import threading
import time
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from accounts.audit import SYSTEM
from core.exceptions import InvalidInput
from ledger.enums import AccountKind, TransactionKind
from ledger.exceptions import AlreadyReversed, InsufficientHoldings, UnbalancedTransaction
from ledger.models import Leg, Transaction
from ledger.selectors import balance_of, balances_from_legs, balances_projected
from ledger.services import (
    LegSpec,
    account_for,
    firm_account,
    instrument_get_or_create,
    transaction_post,
    transaction_reverse,
)
from tests.accounts.factories import ClientFactory
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def books():
    instrument_get_or_create(code="HKD", kind="cash", decimals=2)
    instrument_get_or_create(code="BTC", kind="crypto", decimals=8)
    client = ClientFactory()
    return {
        "pool": account_for(kind=AccountKind.COLLATERAL, client=client),
        "loan": account_for(kind=AccountKind.LOAN_PRINCIPAL, client=client, key="F1"),
        "clearing": firm_account(AccountKind.CUSTODY_CLEARING),
        "cash": firm_account(AccountKind.CASH_SETTLEMENT),
    }


def deposit_btc(books, quantity: str):
    return transaction_post(
        kind=TransactionKind.DEPOSIT,
        legs=[
            LegSpec(books["pool"], "BTC", Decimal(quantity)),
            LegSpec(books["clearing"], "BTC", -Decimal(quantity)),
        ],
        memo="deposit",
        actor=SYSTEM,
    )


def test_a_balanced_transaction_moves_balances(books):
    deposit_btc(books, "1.25000000")
    deposit_btc(books, "0.00000001")
    assert balance_of(books["pool"], "BTC") == Decimal("1.25000001")
    assert balance_of(books["clearing"], "BTC") == Decimal("-1.25000001")
    assert balances_projected() == balances_from_legs()


def test_a_transaction_may_hold_several_instruments_each_balanced(books):
    txn = transaction_post(
        kind=TransactionKind.SALE,
        legs=[
            LegSpec(books["cash"], "HKD", Decimal("390000.00")),
            LegSpec(books["loan"], "HKD", Decimal("-390000.00")),
            LegSpec(books["clearing"], "BTC", Decimal("-0.5")),
            LegSpec(books["pool"], "BTC", Decimal("0.5")),
        ],
        memo="mixed",
        actor=SYSTEM,
    )
    assert txn.legs.count() == 4


def test_an_unbalanced_transaction_is_refused_and_writes_nothing(books):
    with (
        writes_nothing(),
        pytest.raises(UnbalancedTransaction, match=r"do not sum to zero: BTC \+0.00000001"),
    ):
        transaction_post(
            kind=TransactionKind.DEPOSIT,
            legs=[
                LegSpec(books["pool"], "BTC", Decimal("1.00000001")),
                LegSpec(books["clearing"], "BTC", Decimal("-1")),
            ],
            memo="bad",
            actor=SYSTEM,
        )


def test_balancing_across_instruments_is_not_balancing(books):
    with writes_nothing(), pytest.raises(UnbalancedTransaction, match="BTC \\+1, HKD -1"):
        transaction_post(
            kind=TransactionKind.DEPOSIT,
            legs=[
                LegSpec(books["pool"], "BTC", Decimal("1")),
                LegSpec(books["clearing"], "HKD", Decimal("-1")),
            ],
            memo="bad",
            actor=SYSTEM,
        )


def test_more_places_than_the_instrument_has_is_refused(books):
    with writes_nothing(), pytest.raises(InvalidInput, match="more than the 8 decimal places BTC allows"):
        deposit_btc(books, "0.000000001")


def test_a_holding_cannot_go_below_zero(books):
    deposit_btc(books, "1")
    with writes_nothing(), pytest.raises(InsufficientHoldings, match="holds 1 BTC; 2 BTC cannot be taken"):
        transaction_post(
            kind=TransactionKind.WITHDRAWAL,
            legs=[
                LegSpec(books["pool"], "BTC", Decimal("-2")),
                LegSpec(books["clearing"], "BTC", Decimal("2")),
            ],
            memo="too much",
            actor=SYSTEM,
        )


def test_a_reversal_restores_balances_and_happens_once(books):
    original = deposit_btc(books, "2")
    reversal = transaction_reverse(transaction=original, actor=SYSTEM)
    assert reversal.reverses == original
    assert balance_of(books["pool"], "BTC") == 0
    assert sorted(leg.amount for leg in reversal.legs.all()) == [Decimal("-2"), Decimal("2")]
    with writes_nothing(), pytest.raises(AlreadyReversed):
        transaction_reverse(transaction=original, actor=SYSTEM)
    with writes_nothing(), pytest.raises(AlreadyReversed):
        transaction_reverse(transaction=reversal, actor=SYSTEM)


def test_an_idempotency_key_posts_once(books):
    legs = [LegSpec(books["pool"], "BTC", Decimal("1")), LegSpec(books["clearing"], "BTC", Decimal("-1"))]
    first = transaction_post(
        kind=TransactionKind.DEPOSIT, legs=legs, memo="x", actor=SYSTEM, idempotency_key="k1"
    )
    with writes_nothing():
        second = transaction_post(
            kind=TransactionKind.DEPOSIT, legs=legs, memo="x", actor=SYSTEM, idempotency_key="k1"
        )
    assert first == second
    assert balance_of(books["pool"], "BTC") == 1


def test_postgresql_refuses_an_unbalanced_transaction_written_around_the_orm(books):
    """Bypass the service and the model: raw inserts of one leg. The deferred trigger fires when the
    constraints are checked (at commit; here forced with SET CONSTRAINTS ... IMMEDIATE)."""
    txn = deposit_btc(books, "1")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_leg (transaction_id, account_id, instrument_id, amount) VALUES (%s, %s, 'BTC', 5)",
            [txn.pk, books["pool"].pk],
        )
        with pytest.raises(
            IntegrityError, match=f"ledger transaction {txn.pk} does not balance: BTC sums to 5"
        ):
            cursor.execute("SET CONSTRAINTS ledger_leg_zero_sum IMMEDIATE")
        transaction.set_rollback(True)
    assert Leg.objects.filter(transaction=txn).count() == 2


def test_postgresql_accepts_a_balanced_transaction_written_around_the_orm(books):
    txn = Transaction.objects.create(kind=TransactionKind.DEPOSIT, memo="raw", actor_label="test")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_leg (transaction_id, account_id, instrument_id, amount) VALUES (%s, %s, 'BTC', 3), (%s, %s, 'BTC', -3)",
            [txn.pk, books["pool"].pk, txn.pk, books["clearing"].pk],
        )
        cursor.execute("SET CONSTRAINTS ledger_leg_zero_sum IMMEDIATE")
    assert Leg.objects.filter(transaction=txn).count() == 2


def test_legs_and_transactions_are_append_only_in_postgresql(books):
    """The application's role has no UPDATE or DELETE on them; the owner meets the append-only triggers
    (tests/core/test_database_roles.py)."""
    txn = deposit_btc(books, "1")
    with pytest.raises(DatabaseError, match="permission denied for table ledger_leg"), transaction.atomic():
        Leg.objects.filter(transaction=txn).update(amount=Decimal("7"))
    with pytest.raises(DatabaseError, match="permission denied for table ledger_leg"), transaction.atomic():
        Leg.objects.filter(transaction=txn).delete()
    with (
        pytest.raises(DatabaseError, match="permission denied for table ledger_transaction"),
        transaction.atomic(),
    ):
        Transaction.objects.filter(pk=txn.pk).update(memo="rewritten")
    assert balance_of(books["pool"], "BTC") == 1


def test_a_zero_leg_is_refused(books):
    with writes_nothing(), pytest.raises(InvalidInput, match="cannot be zero"):
        transaction_post(
            kind=TransactionKind.DEPOSIT,
            legs=[
                LegSpec(books["pool"], "BTC", Decimal("0")),
                LegSpec(books["clearing"], "BTC", Decimal("1")),
                LegSpec(books["clearing"], "BTC", Decimal("-1")),
            ],
            memo="zero",
            actor=SYSTEM,
        )


def test_floats_are_refused(books):
    with writes_nothing(), pytest.raises(InvalidInput, match="not a finite Decimal"):
        transaction_post(
            kind=TransactionKind.DEPOSIT,
            legs=[LegSpec(books["pool"], "BTC", 1.5), LegSpec(books["clearing"], "BTC", -1.5)],
            memo="float",
            actor=SYSTEM,
        )


@pytest.mark.django_db(transaction=True)
def test_two_postings_racing_for_one_key_post_once_and_return_the_same_transaction(books):
    """The second waits on the key's unique index for the first to commit, then returns its transaction."""
    legs = [LegSpec(books["pool"], "BTC", Decimal("1")), LegSpec(books["clearing"], "BTC", Decimal("-1"))]
    first_inserted, results = threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                results["first"] = transaction_post(
                    kind=TransactionKind.DEPOSIT, legs=legs, memo="x", actor=SYSTEM, idempotency_key="race"
                )
                first_inserted.set()
                time.sleep(0.5)  # uncommitted while the second tries the key
        finally:
            connection.close()

    def second():
        try:
            first_inserted.wait(10)
            results["second"] = transaction_post(
                kind=TransactionKind.DEPOSIT, legs=legs, memo="x", actor=SYSTEM, idempotency_key="race"
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results["first"].pk == results["second"].pk
    assert Transaction.objects.filter(idempotency_key="race").count() == 1
    assert balance_of(books["pool"], "BTC") == 1
    assert balances_projected() == balances_from_legs()
