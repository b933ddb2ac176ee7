"""Races around the automatic top-up on real PostgreSQL: threads with their own connections, each
committing for real. The top-up locks the facility, the pool, the instruction and the client's custody
account; a custody release and a revocation each lock what they change, so one of two racing always goes
first and the other sees what it did."""

import time
from decimal import Decimal

import pytest

from accounts import roles
from accounts.audit import SYSTEM
from collateral.custody import custody_holding_receive, custody_holding_release
from collateral.selectors import custody_holdings, pool_holdings
from financing.enums import InstructionStatus, MarginCallStatus, TopUpOutcome, TopUpTrigger
from financing.lending.services import drawdown_create
from financing.margin_calls.services import margin_call_issue
from financing.models import AutomaticTopUp
from financing.selectors import facility_pool
from financing.top_ups.automatic import automatic_top_up_run
from financing.top_ups.instructions import standing_top_up_revoke
from ledger.selectors import balances_from_legs, balances_projected
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import price, standard_market
from tests.financing.factories import facility_with_pool
from tests.financing.test_concurrency import run_together
from tests.financing.test_top_ups import active_instruction, client_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world():
    assets = standard_market()
    return assets, StaffFactory(role=roles.CREDIT_OFFICER)


def called_facility(assets, signer, n):
    """1 BTC, HK$265,200 drawn, a margin call at US$80,000 (62,400.00 of cash cures it), HK$100,000 free."""
    price("BTC", "100000")
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    custody_holding_receive(
        client=facility.client,
        asset=assets["HKD"],
        quantity="100000.00",
        actor=SYSTEM,
        external_reference=f"C{n}",
    )
    instruction = active_instruction(facility, client_user(facility.client), signer)
    price("BTC", "80000")
    margin_call_issue(facility=facility, actor=SYSTEM)
    return facility, instruction


def release_after(seconds, **arguments):
    time.sleep(seconds)
    return custody_holding_release(**arguments)


def test_a_custody_release_racing_a_top_up_never_takes_the_same_cash_twice(world):
    assets, signer = world
    orders = set()
    for n in range(4):
        facility, _ = called_facility(assets, signer, n)
        outcomes = run_together(
            lambda facility=facility: automatic_top_up_run(
                facility=facility, actor=SYSTEM, trigger=TopUpTrigger.MARGIN_CALL
            ),
            lambda facility=facility, n=n: release_after(
                0.5 if n % 2 else 0,  # give the top-up a head start every other time: both orders happen
                client=facility.client,
                asset=assets["HKD"],
                quantity="100000.00",
                actor=SYSTEM,
                external_reference=f"R{n}",
            ),
        )
        top_up = AutomaticTopUp.objects.get(facility=facility)
        free = custody_holdings(facility.client).get("HKD", Decimal(0))
        pledged = pool_holdings(facility_pool(facility)).get("HKD", Decimal(0))
        orders.add(top_up.outcome)
        if top_up.outcome == TopUpOutcome.REACHED_TARGET:  # the top-up went first: the release is refused
            assert outcomes == ["ok", "insufficient_holdings"]
            assert (pledged, free) == (Decimal("62400.00"), Decimal("37600.00"))
            assert facility.margin_calls.get().status == MarginCallStatus.CURED
        else:  # the release went first: nothing was left to move
            assert outcomes == ["ok", "ok"]
            assert top_up.outcome == TopUpOutcome.NOTHING_MOVED
            assert (pledged, free) == (Decimal(0), Decimal(0))
            assert facility.margin_calls.get().status == MarginCallStatus.ISSUED
    assert balances_projected() == balances_from_legs()
    assert orders == {TopUpOutcome.REACHED_TARGET, TopUpOutcome.NOTHING_MOVED}  # both orders were tried


def test_a_revocation_racing_a_top_up_is_either_before_it_or_after_it(world):
    assets, signer = world
    for n in range(4):
        facility, instruction = called_facility(assets, signer, n)
        owner = instruction.requested_by
        outcomes = run_together(
            lambda facility=facility: automatic_top_up_run(
                facility=facility, actor=SYSTEM, trigger=TopUpTrigger.MARGIN_CALL
            ),
            lambda instruction=instruction, owner=owner: standing_top_up_revoke(
                instruction=instruction, actor=owner
            ),
        )
        assert outcomes == ["ok", "ok"]
        instruction.refresh_from_db()
        assert instruction.status == InstructionStatus.REVOKED
        top_up = AutomaticTopUp.objects.filter(facility=facility).first()
        if top_up is not None:  # it ran before the revocation took effect, never after
            assert top_up.created_at < instruction.revoked_at
            assert pool_holdings(facility_pool(facility))["HKD"] == Decimal("62400.00")
        else:
            assert custody_holdings(facility.client) == {"HKD": Decimal("100000.00")}
