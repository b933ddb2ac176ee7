"""The custody feed: free (unpledged) holdings in the ledger, apart from the pledged pool."""

import re
from decimal import Decimal

import pytest

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from collateral.custody import custody_holding_receive, custody_holding_release
from collateral.enums import CustodyMovementKind
from collateral.exceptions import CustodyReferenceConflict, InsufficientCustodyHoldings
from collateral.models import CustodyMovement
from collateral.selectors import custody_account_of, custody_holdings, custody_holdings_valued, pool_holdings
from collateral.services import collateral_deposit, pool_open
from core.exceptions import InvalidInput
from ledger.enums import AccountKind, TransactionKind
from ledger.selectors import balance_of, balances_from_legs, balances_projected
from ledger.services import firm_account
from tests.accounts.factories import ClientFactory
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(market):
    return ClientFactory()


def receive(client, symbol, quantity, reference, market):
    return custody_holding_receive(
        client=client, asset=market[symbol], quantity=quantity, actor=SYSTEM, external_reference=reference
    )


def test_a_receipt_credits_the_clients_free_holdings_from_custody_clearing(client, market):
    movement = receive(client, "HKD", "250000.00", "CUST-1", market)
    receive(client, "0005.HK", "4000", "CUST-2", market)
    assert movement.kind == CustodyMovementKind.RECEIVED
    assert movement.transaction.kind == TransactionKind.CUSTODY_IN
    assert custody_holdings(client) == {"0005.HK": Decimal("4000"), "HKD": Decimal("250000.00")}
    account = custody_account_of(client)
    assert account.kind == AccountKind.CUSTODY
    assert account.client == client
    assert balance_of(firm_account(AccountKind.CUSTODY_CLEARING), "HKD") == Decimal("-250000.00")
    assert balances_projected() == balances_from_legs()
    audit = AuditEvent.objects.get(action="custody.received", target_id=str(movement.pk))
    assert audit.after["quantity"] == "250000.00"
    assert audit.after["external_reference"] == "CUST-1"


def test_free_holdings_are_not_pledged(client, market):
    pool = pool_open(client=client, actor=SYSTEM)
    collateral_deposit(pool=pool, asset=market["BTC"], quantity="1", actor=SYSTEM)
    receive(client, "BTC", "0.5", "CUST-1", market)
    assert pool_holdings(pool) == {"BTC": Decimal("1.00000000")}
    assert custody_holdings(client) == {"BTC": Decimal("0.50000000")}


def test_the_same_reference_returns_the_movement_already_recorded(client, market):
    first = receive(client, "BTC", "0.5", "CUST-1", market)
    with writes_nothing():
        again = receive(client, "BTC", "0.50000000", " CUST-1 ", market)
    assert again == first
    assert custody_holdings(client) == {"BTC": Decimal("0.50000000")}


def test_the_same_reference_for_another_movement_is_refused(client, market):
    receive(client, "BTC", "0.5", "CUST-1", market)
    with writes_nothing(), pytest.raises(CustodyReferenceConflict, match="was already recorded"):
        receive(client, "BTC", "0.6", "CUST-1", market)
    with writes_nothing(), pytest.raises(CustodyReferenceConflict):
        custody_holding_release(
            client=client, asset=market["BTC"], quantity="0.5", actor=SYSTEM, external_reference="CUST-1"
        )


def test_a_reference_is_per_client(client, market):
    other = ClientFactory()
    receive(client, "BTC", "0.5", "CUST-1", market)
    receive(other, "BTC", "0.5", "CUST-1", market)
    assert CustodyMovement.objects.count() == 2


def test_a_release_takes_from_the_free_holdings(client, market):
    receive(client, "HKD", "1000.00", "CUST-1", market)
    movement = custody_holding_release(
        client=client, asset=market["HKD"], quantity="999.99", actor=SYSTEM, external_reference="CUST-2"
    )
    assert movement.kind == CustodyMovementKind.RELEASED
    assert movement.transaction.kind == TransactionKind.CUSTODY_OUT
    assert custody_holdings(client) == {"HKD": Decimal("0.01")}
    assert balance_of(firm_account(AccountKind.CUSTODY_CLEARING), "HKD") == Decimal("-0.01")


def test_more_than_is_held_free_cannot_be_released(client, market):
    receive(client, "HKD", "1000.00", "CUST-1", market)
    message = f"{client} holds 1000 HKD free in custody; 1000.01 HKD cannot be released."
    with writes_nothing(), pytest.raises(InsufficientCustodyHoldings, match=re.escape(message)):
        custody_holding_release(
            client=client, asset=market["HKD"], quantity="1000.01", actor=SYSTEM, external_reference="CUST-2"
        )


def test_nothing_is_released_from_an_account_never_opened(client, market):
    with writes_nothing(), pytest.raises(InsufficientCustodyHoldings, match="holds 0 BTC free"):
        custody_holding_release(
            client=client, asset=market["BTC"], quantity="1", actor=SYSTEM, external_reference="CUST-1"
        )
    assert custody_account_of(client) is None


@pytest.mark.parametrize(
    ("symbol", "quantity", "reference", "problem"),
    [
        ("BTC", "0.000000001", "CUST-1", "more than 8 decimal places"),
        ("HKD", "0", "CUST-1", "must be more than zero"),
        ("HKD", "-5", "CUST-1", "must be more than zero"),
        ("HKD", "1.00", "", "the custody system's reference is needed"),
        ("HKD", "1.00", "   ", "the custody system's reference is needed"),
        ("HKD", "1.00", "X" * 101, "at most 100 characters"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(client, market, symbol, quantity, reference, problem):
    with writes_nothing(), pytest.raises(InvalidInput, match=re.escape(problem)):
        receive(client, symbol, quantity, reference, market)


def test_free_holdings_are_shown_at_market_value(client, market):
    receive(client, "BTC", "0.5", "CUST-1", market)
    receive(client, "HKD", "100.00", "CUST-2", market)
    market["0700.HK"].eligible = False
    market["0700.HK"].save(update_fields=["eligible"])
    receive(client, "0700.HK", "100", "CUST-3", market)
    valued = {h.symbol: h for h in custody_holdings_valued(client)}
    assert valued["BTC"].market_value == Decimal("390000.00")  # 0.5 × 100,000 × 7.8
    assert valued["HKD"].market_value == Decimal("100.00")
    assert valued["0700.HK"].market_value == Decimal("40000.00")
    assert not valued["0700.HK"].eligible
