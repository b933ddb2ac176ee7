"""The margin-call ladder driven by price moves, as the sweep sees them."""

import datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from accounts.audit import SYSTEM
from collateral.services import collateral_deposit
from core.calendar import HONG_KONG, next_business_day
from financing import exceptions as refusals
from financing.enums import (
    FacilityStatus,
    ForcedSaleStatus,
    ForcedSaleTrigger,
    MarginCallStatus,
    MarginStatus,
)
from financing.lending.policies import margin_policy_save
from financing.lending.services import (
    collateral_top_up,
    collateral_withdraw,
    drawdown_create,
    facility_status_change,
    repayment_create,
)
from financing.models import ForcedSale, MarginCall, MarginPolicy, MarginState
from financing.monitoring.cycle import monitoring_cycle_run
from financing.monitoring.ladder import ladder_run, margin_calls_escalate_due
from financing.monitoring.sweep import sweep_run
from financing.selectors import facility_pool
from notifications.models import Event, OutboxMessage
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("both_ladders")]


@pytest.fixture
def facility(market):
    """1 BTC only: LV 312,000 at US$100,000. Drawn 265,200 (85%)."""
    StaffFactory(role="Risk officer", email="risk@broker.example")
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    return facility


def btc_at(value: str):
    price("BTC", value)
    return monitoring_cycle_run(symbols=["BTC"], trigger="test")


def events():
    return list(Event.objects.order_by("occurred_at").values_list("type", flat=True))


def test_the_warning_tells_client_and_staff_and_blocks_nothing(facility):
    btc_at("94000")  # LV 293,280: 90.43%
    assert MarginState.objects.get(facility=facility).status == MarginStatus.WARNING
    assert events() == ["margin.warning"]
    recipients = set(OutboxMessage.objects.values_list("recipient", flat=True))
    assert recipients == {facility.client.email, "risk@broker.example"}
    drawdown = Decimal("0.01")
    with pytest.raises(refusals.MaxAdvanceExceeded):  # above max advance, but not because of the warning
        drawdown_create(facility=facility, amount=drawdown, actor=SYSTEM)


def test_a_margin_call_states_what_cures_it_and_by_when(facility):
    btc_at("80000")  # LV 249,600: 106.25%
    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.ISSUED
    assert call.ratio_at_issue == Decimal("1.06250000")
    assert call.repayment_due.amount == Decimal("53040.00")  # 265,200 − 0.85 × 249,600
    assert call.top_up_due.amount == Decimal("62400.00")  # 265,200 / 0.85 − 249,600
    local_issue = call.issued_at.astimezone(HONG_KONG).date()
    assert call.deadline.astimezone(HONG_KONG).time() == datetime.time(12, 0)
    assert call.deadline.astimezone(HONG_KONG).date() > local_issue
    assert events() == ["margin_call.issued"]  # straight past warning: one event, the call
    with writes_nothing(), pytest.raises(refusals.OpenMarginCall):
        drawdown_create(facility=facility, amount="1.00", actor=SYSTEM)


def test_a_facility_on_its_own_policy_is_called_by_that_policy(market):
    """Not the default policy: its target sets what cures the call, its cure days and time the deadline."""
    policy = MarginPolicy(name="Two days to 16:00", target=Decimal("0.80"), cure_business_days=2,
                          cure_time=datetime.time(16, 0))  # fmt: skip
    margin_policy_save(policy=policy, actor=SYSTEM)
    facility = facility_with_pool(holdings={"BTC": "1"}, policy=policy)
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    btc_at("80000")  # LV 249,600: 106.25%
    call = MarginCall.objects.get(facility=facility)
    assert call.repayment_due.amount == Decimal("65520.00")  # 265,200 − 0.80 × 249,600
    assert call.top_up_due.amount == Decimal("81900.00")  # 265,200 / 0.80 − 249,600
    deadline = call.deadline.astimezone(HONG_KONG)
    assert deadline.time() == datetime.time(16, 0)
    assert deadline.date() == next_business_day(call.issued_at.astimezone(HONG_KONG).date(), 2)


def test_running_the_sweep_again_changes_nothing(facility):
    btc_at("80000")
    counts = (Event.objects.count(), OutboxMessage.objects.count(), MarginCall.objects.count())
    again = monitoring_cycle_run(trigger="test")
    assert (again.states_changed, again.snapshots_written, again.ladder_actions) == (0, 0, 0)
    assert (Event.objects.count(), OutboxMessage.objects.count(), MarginCall.objects.count()) == counts
    assert ladder_run() == 0


def test_at_the_forced_sale_threshold_a_sale_is_requested_at_once(facility):
    btc_at("70000")  # LV 218,400: 121.4%
    sale = ForcedSale.objects.get()
    assert sale.trigger == ForcedSaleTrigger.THRESHOLD
    assert sale.status == ForcedSaleStatus.PLANNED
    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.FORCED_SALE
    assert sale.margin_call == call
    assert events() == ["margin_call.issued", "forced_sale.requested", "margin_call.forced_sale"]
    btc_at("60000")
    assert ForcedSale.objects.count() == 1  # one open sale per facility


def test_a_market_recovery_to_target_cures_the_call(facility):
    btc_at("80000")
    btc_at("95000")  # 89.47%: below the call, above target: still open
    assert MarginCall.objects.get().status == MarginCallStatus.ISSUED
    btc_at("100000")  # 85.00%: at target
    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.CURED
    assert "at or below the target of 85.00%" in call.close_reason
    assert events()[-1] == "margin_call.cured"


def test_a_repayment_to_target_cures_the_call_on_the_next_run(facility):
    btc_at("80000")
    repayment_create(facility=facility, amount="53040.00", actor=SYSTEM)
    monitoring_cycle_run(symbols=[], trigger="test")
    assert MarginCall.objects.get().status == MarginCallStatus.CURED


def test_an_unmet_call_is_escalated_to_a_forced_sale_after_its_deadline(facility):
    btc_at("80000")
    call = MarginCall.objects.get()
    assert margin_calls_escalate_due() == 0  # not yet
    MarginCall.objects.filter(pk=call.pk).update(deadline=timezone.now() - datetime.timedelta(seconds=1))
    assert margin_calls_escalate_due() == 1
    call.refresh_from_db()
    assert call.escalated_at is not None
    assert call.status == MarginCallStatus.FORCED_SALE
    sale = ForcedSale.objects.get()
    assert sale.trigger == ForcedSaleTrigger.DEADLINE
    assert events()[-3:] == ["margin_call.escalated", "forced_sale.requested", "margin_call.forced_sale"]
    assert margin_calls_escalate_due() == 0


def test_no_withdrawal_or_drawdown_while_a_forced_sale_is_open(facility, market):
    btc_at("70000")
    btc_at("150000")  # even with the market back, the sale is open
    with writes_nothing(), pytest.raises(refusals.OpenMarginCall, match="forced sale in progress"):
        drawdown_create(facility=facility, amount="1.00", actor=SYSTEM)
    with pytest.raises(refusals.WithdrawalRefused):
        collateral_withdraw(pool=facility_pool(facility), asset=market["BTC"], quantity="0.9", actor=SYSTEM)


def test_emails_go_out_through_the_outbox_on_delivery(facility, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        btc_at("80000")
    subjects = sorted(message.subject for message in mail.outbox)
    assert len(subjects) == 2  # the client and the risk officer
    assert all(subject.startswith(f"[Margin] Margin call on {facility.reference}") for subject in subjects)


def test_one_sweep_acts_on_many_facilities_at_once(market):
    """Three facilities cross three thresholds on one price move: one batch warns, calls and sells."""
    warned = facility_with_pool(holdings={"BTC": "1"})
    called = facility_with_pool(holdings={"BTC": "1"})
    sold = facility_with_pool(holdings={"BTC": "1"})
    for facility, amount in ((warned, "200000.00"), (called, "230000.00"), (sold, "265200.00")):
        drawdown_create(facility=facility, amount=amount, actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    result = btc_at("70000")  # LV 218,400: 91.6%, 105.3%, 121.4%
    assert result.ladder_actions == 4  # a warning, two calls issued, one sale requested
    assert MarginState.objects.get(facility=warned).notified_status == MarginStatus.WARNING
    assert MarginCall.objects.get(facility=called).status == MarginCallStatus.ISSUED
    assert MarginCall.objects.get(facility=sold).status == MarginCallStatus.FORCED_SALE
    assert ForcedSale.objects.get().facility == sold
    assert sorted(Event.objects.values_list("type", flat=True)) == sorted(
        [
            "margin.warning",
            "margin_call.issued",
            "margin_call.issued",
            "forced_sale.requested",
            "margin_call.forced_sale",
        ]
    )
    assert monitoring_cycle_run(trigger="test").ladder_actions == 0


def test_a_top_up_to_target_cures_the_call_at_once(facility, market):
    btc_at("80000")  # call: repay 53,040 or top up 62,400 cash
    collateral_top_up(pool=facility_pool(facility), asset=market["HKD"], quantity="62400.00", actor=SYSTEM)
    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.CURED
    assert call.close_reason == "a top-up of 62400 HKD: ratio 85.00% is at or below the target of 85.00%"
    assert events()[-1] == "margin_call.cured"


def test_a_partial_top_up_lowers_the_amount_due_and_keeps_the_call_open(facility, market):
    btc_at("80000")
    collateral_top_up(pool=facility_pool(facility), asset=market["HKD"], quantity="20000.00", actor=SYSTEM)
    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.ISSUED
    assert call.top_up_due.amount == Decimal("42400.00")  # 265,200 / 0.85 − 269,600
    assert call.repayment_due.amount == Decimal("36040.00")  # 265,200 − 0.85 × 269,600
    assert events()[-1] == "margin_call.updated"


def test_a_partial_repayment_lowers_the_amount_due(facility):
    btc_at("80000")
    repayment_create(facility=facility, amount="10000.00", actor=SYSTEM)
    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.ISSUED
    assert call.repayment_due.amount == Decimal("43040.00")


def test_the_ladder_acts_on_a_top_up_the_sweep_did_not_see(facility, market):
    """The sweep finds a margin call; before the ladder runs, cash arrives. The ladder values the client
    again (it was posted to since its valuation) and issues nothing: the state says what is true now."""
    price("BTC", "80000")
    sweep_run(symbols=["BTC"], trigger="test")
    state = MarginState.objects.get(facility=facility)
    assert (state.status, state.notified_status) == (MarginStatus.MARGIN_CALL, MarginStatus.OK)
    collateral_deposit(pool=facility_pool(facility), asset=market["HKD"], quantity="100000.00", actor=SYSTEM)
    ladder_run()
    assert not MarginCall.objects.exists()
    state.refresh_from_db()
    assert state.status == state.notified_status == MarginStatus.OK
    assert state.margin_value == Decimal("349600.00")  # 249,600 of BTC and 100,000 of cash
    assert events() == []


def test_the_ladder_acts_on_the_sweeps_figures_when_nothing_was_posted(facility):
    """Nothing posted since the sweep: the call is issued on the figures the sweep stored."""
    btc_at("80000")
    state = MarginState.objects.get(facility=facility)
    call = MarginCall.objects.get()
    assert (call.debt_at_issue.amount, call.margin_value_at_issue.amount, call.ratio_at_issue) == (
        state.debt, state.margin_value, state.margin_ratio)  # fmt: skip
    assert state.notified_status == MarginStatus.MARGIN_CALL


def test_a_facility_closed_since_the_sweep_is_only_marked_acted_on(facility):
    """The sweep finds a margin call; before the ladder runs, the debt is repaid and the facility closed. The
    ladder issues nothing, tells nobody, and marks the state acted on."""
    price("BTC", "80000")
    sweep_run(symbols=["BTC"], trigger="test")
    repayment_create(facility=facility, amount="265200.00", actor=SYSTEM)
    facility_status_change(facility=facility, status=FacilityStatus.CLOSED, actor=SYSTEM)
    ladder_run()
    assert not MarginCall.objects.exists()
    assert events() == []
    state = MarginState.objects.get(facility=facility)
    assert (state.status, state.notified_status, state.open) == (
        MarginStatus.MARGIN_CALL,
        MarginStatus.MARGIN_CALL,
        False,
    )
