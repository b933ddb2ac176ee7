"""A margin call under a binding concentration limit states the exact cash top-up that cures it — in the call,
its event and messages, and the API — not the closed form D/T − LV, which asks for more: cash added to the pool
loosens the cut. (The arithmetic: tests/collateral/test_top_up_plan.py.)"""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.audit import SYSTEM
from collateral.services import asset_update
from financing.lending.services import collateral_top_up, drawdown_create
from financing.margin_calls.services import margin_call_issue
from financing.models import MarginCall
from financing.monitoring.cycle import monitoring_cycle_run
from financing.selectors import facility_pool
from notifications.models import Event, OutboxMessage
from notifications.services import webhook_body
from tests.accounts.factories import StaffFactory
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as

pytestmark = pytest.mark.django_db

EXACT, CLOSED_FORM = Decimal("47248.59"), Decimal("58588.24")


@pytest.fixture
def facility(market):
    """1 BTC (US$100,000: MV 780,000) and HK$20,000, drawn 230,000 while BTC had no limit (LV 332,000). Then
    BTC's concentration limit becomes 60%: BTC counts for 0.6 × 800,000 × 0.4 = 192,000, LV 212,000, ratio
    108.49%: a margin call. Cash x cures it once 212,000 + 1.24x (floored) reaches 230,000 / 0.85."""
    facility = facility_with_pool(holdings={"BTC": "1", "HKD": "20000"})
    drawdown_create(facility=facility, amount="230000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    asset_update(asset=market["BTC"], actor=SYSTEM, concentration_limit="0.60")
    return facility


@pytest.mark.usefixtures("both_ladders")
def test_the_ladder_s_call_states_the_exact_cash_top_up(facility):
    monitoring_cycle_run(trigger="test")
    call = MarginCall.objects.get()
    assert call.ratio_at_issue == Decimal("1.08490566")
    assert call.repayment_due.amount == Decimal("49800.00")  # 230,000 − 0.85 × 212,000: exact, no cut moves
    assert call.top_up_due.amount == EXACT  # not 58,588.24
    event = Event.objects.get(type="margin_call.issued")
    assert event.payload["top_up_due"] in ("47248.59", {"amount": "47248.59", "currency": "HKD"})
    assert "HK$47,248.59" in event.summary
    assert "58,588.24" not in event.summary
    assert b"47248.59" in webhook_body(event)
    assert OutboxMessage.objects.filter(event=event).exists()


def test_a_call_issued_by_staff_states_the_exact_cash_top_up(facility):
    call = margin_call_issue(facility=facility, actor=SYSTEM)
    assert call.top_up_due.amount == EXACT


def test_the_api_states_the_exact_cash_top_up(facility):
    monitoring_cycle_run(trigger="test")
    api = APIClient()
    login_as(api, StaffFactory(role="Risk officer"))
    call = api.get(f"/api/v1/margin-calls/{MarginCall.objects.get().pk}/").json()
    assert call["top_up_due"] == "47248.59"


def test_the_stated_cash_cures_the_call_and_a_cent_less_leaves_a_cent_due(facility, market):
    monitoring_cycle_run(trigger="test")
    pool = facility_pool(facility)
    collateral_top_up(pool=pool, asset=market["HKD"], quantity=str(EXACT - Decimal("0.01")), actor=SYSTEM)
    call = MarginCall.objects.get()
    assert (call.status, call.top_up_due.amount) == ("issued", Decimal("0.01"))
    collateral_top_up(pool=pool, asset=market["HKD"], quantity="0.01", actor=SYSTEM)
    assert MarginCall.objects.get().status == "cured"
