"""Automatic top-up: standing instructions (asked for, signed off four-eyes, revoked) and the top-up the
margin-call ladder runs when a call is issued, or at the warning level.

The usual facility: 1 BTC pledged, HK$265,200 drawn (85% of the 312,000 it lends at US$100,000). BTC at
US$80,000 lends 249,600: 106.25%, a margin call that a cash top-up of 62,400.00 (265,200 / 0.85 − 249,600)
or a repayment of 53,040.00 cures."""

import datetime
import logging
from decimal import Decimal

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import roles
from accounts.audit import SYSTEM
from accounts.enums import ApprovalStatus
from accounts.exceptions import DuplicatePendingRequest, FourEyesViolation
from accounts.models import ApprovalRequest, AuditEvent
from accounts.services import approval_request_approve, approval_request_cancel, approval_request_reject
from collateral.custody import custody_holding_receive, custody_holding_release
from collateral.exceptions import AssetNotEligible, InsufficientCustodyHoldings
from collateral.selectors import custody_holdings, pool_holdings
from core.calendar import HONG_KONG
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from financing.enums import (
    InstructionStatus,
    MarginCallStatus,
    MarginStatus,
    TopUpOutcome,
    TopUpTrigger,
)
from financing.lending.services import drawdown_create
from financing.margin_calls.services import margin_call_issue
from financing.models import AutomaticTopUp, ForcedSale, MarginCall, MarginState, StandingTopUpInstruction
from financing.monitoring.cycle import monitoring_cycle_run
from financing.monitoring.ladder import margin_calls_escalate_due
from financing.selectors import (
    facility_pool,
    facility_valuation,
    pending_sign_off_of,
    standing_top_up_instruction_of,
)
from financing.top_ups import automatic
from financing.top_ups.automatic import (
    automatic_top_up_run,
    automatic_top_ups_after_ladder,
    automatic_top_ups_for_new_free_holdings,
)
from financing.top_ups.instructions import standing_top_up_request, standing_top_up_revoke
from ledger.enums import TransactionKind
from ledger.models import Transaction
from ledger.selectors import balances_from_legs, balances_projected
from notifications.models import Event, OutboxMessage
from tests.accounts.factories import StaffFactory, UserFactory
from tests.collateral.factories import asset, price
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(market):
    return {
        "credit": StaffFactory(username="credit", role=roles.CREDIT_OFFICER, email="credit@broker.example"),
        "credit2": StaffFactory(username="credit2", role=roles.CREDIT_OFFICER),
        "risk": StaffFactory(username="risk", role=roles.RISK_OFFICER, email="risk@broker.example"),
        "ops": StaffFactory(username="ops", role=roles.OPERATIONS),
        "compliance": StaffFactory(username="compliance", role=roles.COMPLIANCE),
    }


def client_user(client):
    user = UserFactory(client=client)
    user.save()
    return user


@pytest.fixture
def facility(staff):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    return facility


@pytest.fixture
def client_login(facility):
    return client_user(facility.client)


def receive(client, symbol, quantity, reference=None):
    return custody_holding_receive(
        client=client,
        asset=asset(symbol),
        quantity=quantity,
        actor=SYSTEM,
        external_reference=reference or f"CUST-{symbol}-{quantity}",
    )


def sign_off(instruction, signer):
    approval_request_approve(request=pending_sign_off_of(instruction), actor=signer)
    instruction.refresh_from_db()
    return instruction


def active_instruction(facility, requester, signer, *, trigger=TopUpTrigger.MARGIN_CALL, order=()):
    instruction = standing_top_up_request(
        client=facility.client, trigger=trigger, asset_order=list(order), actor=requester
    )
    return sign_off(instruction, signer)


def btc_at(value: str):
    price("BTC", value)
    return monitoring_cycle_run(symbols=["BTC"], trigger="test")


def event_types(**filters):
    return list(Event.objects.filter(**filters).order_by("occurred_at").values_list("type", flat=True))


# --- the three "done when" cases ------------------------------------------------------------------


def test_a_price_shock_issues_a_call_and_the_automatic_top_up_cures_it(facility, client_login, staff):
    receive(facility.client, "HKD", "100000.00")
    active_instruction(facility, client_login, staff["credit"])
    shocked_at = timezone.now()

    btc_at("80000")

    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.CURED
    assert call.close_reason == "an automatic top-up: ratio 85.00% is at or below the target of 85.00%"
    assert pool_holdings(facility_pool(facility)) == {"BTC": Decimal("1"), "HKD": Decimal("62400.00")}
    assert custody_holdings(facility.client) == {"HKD": Decimal("37600.00")}
    assert facility_valuation(facility).margin_ratio == Decimal("0.85000000")
    top_up = AutomaticTopUp.objects.get()
    assert (top_up.outcome, top_up.trigger, top_up.margin_call) == (
        TopUpOutcome.REACHED_TARGET,
        TopUpTrigger.MARGIN_CALL,
        call,
    )
    assert [(t.asset_id, t.quantity, t.market_value.amount) for t in top_up.transfers.all()] == [
        ("HKD", Decimal("62400.00"), Decimal("62400.00"))
    ]
    assert (top_up.ratio_before, top_up.ratio_after) == (Decimal("1.06250000"), Decimal("0.85000000"))
    assert top_up.still_due_top_up.amount == 0
    legs = sorted((leg.account.kind, leg.instrument_id, leg.amount) for leg in top_up.transaction.legs.all())
    assert top_up.transaction.kind == TransactionKind.TOP_UP
    assert legs == [("collateral", "HKD", Decimal("62400.00")), ("custody", "HKD", Decimal("-62400.00"))]
    assert balances_projected() == balances_from_legs()
    assert event_types(occurred_at__gte=shocked_at) == [
        "margin_call.issued",
        "collateral.automatic_top_up_run",
        "margin_call.cured",
    ]
    told = Event.objects.get(type="collateral.automatic_top_up_run")
    assert told.client == facility.client
    assert told.payload["transfers"] == [{"asset": "HKD", "quantity": "62400", "market_value": "62400.00"}]
    assert told.summary.startswith(
        f"Automatic top-up on {facility.reference}: moved 62400 HKD (HK$62,400.00)"
    )
    assert set(OutboxMessage.objects.filter(event=told).values_list("recipient", flat=True)) == {
        facility.client.email
    }
    assert AuditEvent.objects.get(action="automatic_top_up.moved").after["outcome"] == "reached_target"
    assert (
        MarginState.objects.get(facility=facility).status == MarginStatus.MARGIN_CALL
    )  # until the next sweep
    monitoring_cycle_run(symbols=[], trigger="test")  # the postings bring the client into the next sweep
    assert MarginState.objects.get(facility=facility).status == MarginStatus.OK


def test_a_top_up_that_covers_part_lowers_what_is_due_and_the_call_runs_to_its_deadline(
    facility, client_login, staff
):
    receive(facility.client, "HKD", "20000.00")
    active_instruction(facility, client_login, staff["credit"], order=["ETH"])

    btc_at("80000")

    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.ISSUED
    assert call.top_up_due.amount == Decimal("42400.00")  # 265,200 / 0.85 − 269,600
    assert call.repayment_due.amount == Decimal("36040.00")  # 265,200 − 0.85 × 269,600
    top_up = AutomaticTopUp.objects.get()
    assert top_up.outcome == TopUpOutcome.PARTIAL
    assert top_up.still_due_top_up.amount == Decimal("42400.00")
    assert custody_holdings(facility.client) == {}
    assert event_types()[-3:] == [
        "margin_call.issued",
        "collateral.automatic_top_up_run",
        "margin_call.updated",
    ]
    assert (
        "still due: repay HK$36,040.00 or top up HK$42,400.00 cash"
        in Event.objects.get(type="collateral.automatic_top_up_run").summary
    )

    assert (
        automatic_top_up_run(facility=facility, actor=SYSTEM, trigger=TopUpTrigger.MARGIN_CALL) is None
    )  # nothing new

    MarginCall.objects.filter(pk=call.pk).update(deadline=timezone.now() - datetime.timedelta(seconds=1))
    assert margin_calls_escalate_due() == 1
    call.refresh_from_db()
    assert call.status == MarginCallStatus.FORCED_SALE
    assert ForcedSale.objects.get().margin_call == call


def test_with_nothing_free_to_move_the_call_stands_and_client_and_staff_are_told(
    facility, client_login, staff
):
    receive(facility.client, "0005.HK", "4000")  # free, but the client did not name it
    active_instruction(facility, client_login, staff["credit"], order=["ETH"])
    transactions = Transaction.objects.count()

    btc_at("80000")

    call = MarginCall.objects.get()
    assert call.status == MarginCallStatus.ISSUED
    assert (call.top_up_due.amount, call.repayment_due.amount) == (Decimal("62400.00"), Decimal("53040.00"))
    assert Transaction.objects.count() == transactions  # no top-up posted (the sweep posts nothing)
    assert custody_holdings(facility.client) == {"0005.HK": Decimal("4000")}
    top_up = AutomaticTopUp.objects.get()
    assert top_up.outcome == TopUpOutcome.NOTHING_MOVED
    assert top_up.transaction is None
    assert top_up.skipped == [{"asset": "0005.HK", "reason": "not in the standing instruction"}]
    told = Event.objects.get(type="collateral.auto_top_up_not_possible")
    assert told.summary == (
        f"No automatic top-up on {facility.reference}: nothing free could be moved (0005.HK: not in the "
        f"standing instruction); margin call #{call.pk} stands: repay HK$53,040.00 or top up HK$62,400.00 cash by "
        f"{call.deadline.astimezone(HONG_KONG):%Y-%m-%d %H:%M} HKT"
    )
    recipients = set(OutboxMessage.objects.filter(event=told).values_list("recipient", flat=True))
    assert recipients == {
        facility.client.email,
        "credit@broker.example",
        "credit2@broker.example",
        "risk@broker.example",
    }

    events = Event.objects.count()
    assert automatic_top_up_run(facility=facility, actor=SYSTEM, trigger=TopUpTrigger.MARGIN_CALL) is None
    assert (Event.objects.count(), AutomaticTopUp.objects.count()) == (events, 1)  # told once


def test_nothing_held_free_at_all_is_said_in_words(facility, client_login, staff):
    active_instruction(facility, client_login, staff["credit"])
    btc_at("80000")
    assert "nothing free could be moved (nothing is held free in custody)" in (
        Event.objects.get(type="collateral.auto_top_up_not_possible").summary
    )


# --- triggers --------------------------------------------------------------------------------------


def test_a_warning_trigger_tops_up_at_the_warning_level(facility, client_login, staff):
    receive(facility.client, "HKD", "100000.00")
    active_instruction(facility, client_login, staff["credit"], trigger=TopUpTrigger.WARNING)
    btc_at("94000")  # LV 293,280: 90.43%, a warning; to target: 312,000 − 293,280 = 18,720.00
    assert not MarginCall.objects.exists()
    top_up = AutomaticTopUp.objects.get()
    assert (top_up.trigger, top_up.margin_call, top_up.outcome) == (
        TopUpTrigger.WARNING,
        None,
        TopUpOutcome.REACHED_TARGET,
    )
    assert pool_holdings(facility_pool(facility))["HKD"] == Decimal("18720.00")
    assert event_types()[-2:] == ["margin.warning", "collateral.automatic_top_up_run"]


def test_a_warning_trigger_also_acts_on_a_margin_call(facility, client_login, staff):
    receive(facility.client, "HKD", "100000.00")
    active_instruction(facility, client_login, staff["credit"], trigger=TopUpTrigger.WARNING)
    btc_at("80000")
    assert MarginCall.objects.get().status == MarginCallStatus.CURED


def test_a_margin_call_trigger_does_nothing_at_the_warning_level(facility, client_login, staff):
    receive(facility.client, "HKD", "100000.00")
    active_instruction(facility, client_login, staff["credit"])
    btc_at("94000")
    assert MarginState.objects.get(facility=facility).status == MarginStatus.WARNING
    assert not AutomaticTopUp.objects.exists()
    assert automatic_top_up_run(facility=facility, actor=SYSTEM, trigger=TopUpTrigger.WARNING) is None


def test_at_the_forced_sale_threshold_the_sale_decides_not_the_top_up(facility, client_login, staff):
    receive(facility.client, "HKD", "100000.00")
    active_instruction(facility, client_login, staff["credit"])
    btc_at("70000")  # 121.4%: the call is handed to a forced sale at once
    assert MarginCall.objects.get().status == MarginCallStatus.FORCED_SALE
    assert ForcedSale.objects.exists()
    assert not AutomaticTopUp.objects.exists()
    assert custody_holdings(facility.client) == {"HKD": Decimal("100000.00")}


@pytest.mark.parametrize("state", ["pending", "revoked", "rejected"])
def test_an_instruction_not_in_force_does_nothing(facility, client_login, staff, state):
    receive(facility.client, "HKD", "100000.00")
    instruction = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.WARNING, asset_order=[], actor=client_login
    )
    if state == "revoked":
        sign_off(instruction, staff["credit"])
        standing_top_up_revoke(instruction=instruction, actor=client_login)
    elif state == "rejected":
        approval_request_reject(request=pending_sign_off_of(instruction), actor=staff["credit"], note="no")
    btc_at("80000")
    assert MarginCall.objects.get().status == MarginCallStatus.ISSUED
    assert not AutomaticTopUp.objects.exists()
    assert custody_holdings(facility.client) == {"HKD": Decimal("100000.00")}
    assert automatic_top_up_run(facility=facility, actor=SYSTEM, trigger=TopUpTrigger.MARGIN_CALL) is None


# --- what moves, in what order ----------------------------------------------------------------------


def test_cash_first_hkd_then_other_currencies_then_the_clients_order(facility, client_login, staff):
    for symbol, quantity in (("BTC", "1"), ("ETH", "10"), ("USD", "1000.00"), ("HKD", "10000.00")):
        receive(facility.client, symbol, quantity)
    active_instruction(facility, client_login, staff["credit"], order=["ETH", "BTC"])
    btc_at("80000")
    top_up = AutomaticTopUp.objects.get()
    # 62,400 of margin value: HK$10,000, US$1,000 (7,800 × 0.98 = 7,644), then ETH for the 44,756 left
    # (10,920 a unit: the position must be worth 127,874.29, so 4.098534775641025642 ETH); BTC untouched.
    assert [(t.asset_id, t.quantity) for t in top_up.transfers.all()] == [
        ("HKD", Decimal("10000.00")),
        ("USD", Decimal("1000.00")),
        ("ETH", Decimal("4.098534775641025642")),
    ]
    assert MarginCall.objects.get().status == MarginCallStatus.CURED
    assert custody_holdings(facility.client)["BTC"] == Decimal("1")


def test_with_a_concentration_limit_the_call_states_the_cash_the_top_up_moves(staff):
    # Tencent alone (50% limit): 1,000 × 400 lends 0.7 × 200,000 = 140,000; 119,000 drawn (85%). At HK$330 it
    # lends 115,500: 103.03%. The closed form would ask 119,000 / 0.85 − 115,500 = 24,500.00, but cash also
    # lifts Tencent's cap by half its amount: 115,500 + 1.35 C ≥ 140,000 → C = 18,148.15, which the call states
    # (it stated 24,500.00 before issue 24) and the automatic top-up moves.
    facility = facility_with_pool(holdings={"0700.HK": "1000"})
    drawdown_create(facility=facility, amount="119000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    receive(facility.client, "HKD", "50000.00")
    active_instruction(facility, client_user(facility.client), staff["credit"])
    price("0700.HK", "330")
    monitoring_cycle_run(symbols=["0700.HK"], trigger="test")
    call = MarginCall.objects.get()
    assert call.top_up_due.amount == Decimal("18148.15")
    assert call.status == MarginCallStatus.CURED
    assert pool_holdings(facility_pool(facility))["HKD"] == Decimal("18148.15")
    assert facility_valuation(facility).margin_value == Decimal("140000.00")


def test_an_ineligible_or_unpriced_asset_is_skipped_and_said_so(facility, client_login, staff, market):
    receive(facility.client, "0005.HK", "400")
    active_instruction(facility, client_login, staff["credit"], order=["0005.HK"])
    market["0005.HK"].eligible = False
    market["0005.HK"].save(update_fields=["eligible"])
    btc_at("80000")
    top_up = AutomaticTopUp.objects.get()
    assert top_up.skipped == [{"asset": "0005.HK", "reason": "not eligible collateral"}]


# --- idempotency, revocation, races ----------------------------------------------------------------


def test_running_it_again_on_an_unchanged_situation_moves_nothing(facility, client_login, staff):
    receive(facility.client, "HKD", "100000.00")
    active_instruction(facility, client_login, staff["credit"], trigger=TopUpTrigger.WARNING)
    btc_at("80000")
    counts = (Transaction.objects.count(), Event.objects.count(), AutomaticTopUp.objects.count())
    with writes_nothing():
        assert automatic_top_up_run(facility=facility, actor=SYSTEM, trigger=TopUpTrigger.MARGIN_CALL) is None
        assert automatic_top_up_run(facility=facility, actor=SYSTEM, trigger=TopUpTrigger.WARNING) is None
    assert (Transaction.objects.count(), Event.objects.count(), AutomaticTopUp.objects.count()) == counts


def test_new_free_holdings_are_used_on_the_next_run(facility, client_login, staff):
    receive(facility.client, "HKD", "20000.00")
    active_instruction(facility, client_login, staff["credit"])
    btc_at("80000")
    receive(facility.client, "HKD", "50000.00", reference="CUST-later")
    top_up = automatic_top_up_run(facility=facility, actor=staff["risk"], trigger=TopUpTrigger.MARGIN_CALL)
    assert top_up.outcome == TopUpOutcome.REACHED_TARGET
    assert top_up.actor_label == "risk"
    assert [(t.asset_id, t.quantity) for t in top_up.transfers.all()] == [("HKD", Decimal("42400.00"))]
    assert MarginCall.objects.get().status == MarginCallStatus.CURED


def test_free_holdings_received_while_a_call_is_open_are_moved_by_the_next_sweep(
    facility, client_login, staff
):
    active_instruction(facility, client_login, staff["credit"])
    btc_at("80000")  # the call: nothing free to move yet
    assert AutomaticTopUp.objects.get().outcome == TopUpOutcome.NOTHING_MOVED
    receive(facility.client, "HKD", "100000.00", reference="CUST-later")
    monitoring_cycle_run(symbols=["ETH"], trigger="test")  # the next sweep, whatever moved
    top_up = AutomaticTopUp.objects.latest("pk")
    assert (top_up.trigger, top_up.outcome) == (TopUpTrigger.MARGIN_CALL, TopUpOutcome.REACHED_TARGET)
    assert [(t.asset_id, t.quantity) for t in top_up.transfers.all()] == [("HKD", Decimal("62400.00"))]
    assert MarginCall.objects.get().status == MarginCallStatus.CURED
    counts = (Transaction.objects.count(), AutomaticTopUp.objects.count())
    events = Event.objects.count()
    monitoring_cycle_run(
        symbols=["ETH"], trigger="test"
    )  # the receipt is still in the window: no second top-up
    assert (Transaction.objects.count(), AutomaticTopUp.objects.count()) == counts
    assert event_types()[events:] == ["margin.restored"]  # the sweep sees the pool topped up


def test_free_holdings_received_at_the_warning_level_are_moved_for_a_warning_trigger(
    facility, client_login, staff
):
    active_instruction(facility, client_login, staff["credit"], trigger=TopUpTrigger.WARNING)
    btc_at("94000")  # a warning, nothing free
    receive(facility.client, "HKD", "100000.00", reference="CUST-later")
    monitoring_cycle_run(symbols=["ETH"], trigger="test")
    top_up = AutomaticTopUp.objects.latest("pk")
    assert (top_up.trigger, top_up.outcome) == (TopUpTrigger.WARNING, TopUpOutcome.REACHED_TARGET)
    assert pool_holdings(facility_pool(facility))["HKD"] == Decimal("18720.00")


def test_free_holdings_received_at_the_warning_level_wait_for_a_call_with_a_call_trigger(
    facility, client_login, staff
):
    active_instruction(facility, client_login, staff["credit"])
    btc_at("94000")
    receive(facility.client, "HKD", "100000.00", reference="CUST-later")
    monitoring_cycle_run(symbols=["ETH"], trigger="test")
    assert not AutomaticTopUp.objects.exists()
    assert custody_holdings(facility.client) == {"HKD": Decimal("100000.00")}


def test_a_revocation_takes_effect_at_once(facility, client_login, staff):
    receive(facility.client, "HKD", "100000.00")
    instruction = active_instruction(facility, client_login, staff["credit"])
    standing_top_up_revoke(instruction=instruction, actor=staff["risk"], reason="client phoned")
    instruction.refresh_from_db()
    assert (instruction.status, instruction.revoked_by, instruction.revoke_reason) == (
        InstructionStatus.REVOKED,
        staff["risk"],
        "client phoned",
    )
    assert standing_top_up_instruction_of(facility.client) is None
    btc_at("80000")
    assert not AutomaticTopUp.objects.exists()
    assert Event.objects.filter(type="standing_top_up.revoked", client=facility.client).exists()


def test_what_the_top_up_moved_cannot_be_released_again(facility, client_login, staff):
    receive(facility.client, "HKD", "62400.00")
    active_instruction(facility, client_login, staff["credit"])
    btc_at("80000")
    with writes_nothing(), pytest.raises(InsufficientCustodyHoldings):
        custody_holding_release(
            client=facility.client,
            asset=asset("HKD"),
            quantity="0.01",
            actor=SYSTEM,
            external_reference="R-1",
        )


def test_a_failure_is_logged_and_does_not_stop_the_others(staff, monkeypatch, caplog):
    first = facility_with_pool(holdings={"BTC": "1"})
    second = facility_with_pool(holdings={"BTC": "1"})
    for facility in (first, second):
        drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
        receive(facility.client, "HKD", "100000.00", reference=f"CUST-{facility.pk}")
        active_instruction(facility, client_user(facility.client), staff["credit"])
    monitoring_cycle_run(trigger="test")
    real_custody_account_of = automatic.custody_account_of

    def custody_account_of(client):
        if client.pk == first.client_id:
            raise RuntimeError("custody feed out of step")
        return real_custody_account_of(client)

    monkeypatch.setattr(automatic, "custody_account_of", custody_account_of)
    with caplog.at_level(logging.ERROR, logger="financing.top_ups.automatic"):
        btc_at("80000")
    assert MarginCall.objects.get(facility=first).status == MarginCallStatus.ISSUED
    assert MarginCall.objects.get(facility=second).status == MarginCallStatus.CURED
    assert custody_holdings(first.client) == {"HKD": Decimal("100000.00")}
    assert f"automatic top-up of {first.reference} (margin_call) failed" in caplog.text


def test_the_hooks_cost_one_query_when_nobody_has_an_instruction(facility, django_assert_num_queries):
    receive(facility.client, "HKD", "100000.00")
    with django_assert_num_queries(1):
        assert (
            automatic_top_ups_for_new_free_holdings(
                since=timezone.now() - datetime.timedelta(hours=1), actor=SYSTEM
            )
            == 0
        )
    with django_assert_num_queries(0):
        assert automatic_top_ups_after_ladder(called={}, warned={}, actor=SYSTEM) == 0
    price("BTC", "80000")
    with transaction.atomic():
        call = margin_call_issue(facility=facility, actor=SYSTEM)
        with django_assert_num_queries(1):
            assert (
                automatic_top_ups_after_ladder(
                    called={facility.pk: call.facility.client_id}, warned={}, actor=SYSTEM
                )
                == 0
            )


# --- asking, signing off (four-eyes) and revoking ---------------------------------------------------


def test_a_client_asks_and_a_member_of_staff_signs_off(facility, client_login, staff):
    instruction = standing_top_up_request(
        client=facility.client,
        trigger=TopUpTrigger.WARNING,
        asset_order=["eth", "0005.HK"],
        actor=client_login,
    )
    assert (instruction.status, instruction.requested_by, instruction.asset_order) == (
        InstructionStatus.PENDING_SIGN_OFF,
        client_login,
        ["ETH", "0005.HK"],
    )
    approval = pending_sign_off_of(instruction)
    assert (approval.kind, approval.requested_by, approval.proposed) == (
        "standing_top_up",
        client_login,
        {"trigger": "warning", "asset_order": ["ETH", "0005.HK"]},
    )
    assert standing_top_up_instruction_of(facility.client) is None  # not before sign-off
    sign_off(instruction, staff["risk"])
    assert instruction.status == InstructionStatus.ACTIVE
    assert instruction.signed_off_by == staff["risk"]
    assert instruction.signed_off_at is not None
    assert standing_top_up_instruction_of(facility.client) == instruction
    assert list(
        AuditEvent.objects.filter(action__startswith="standing_top_up")
        .order_by("pk")
        .values_list("action", flat=True)
    ) == ["standing_top_up.requested", "standing_top_up.signed_off"]
    assert event_types(client=facility.client)[-2:] == [
        "standing_top_up.requested",
        "standing_top_up.activated",
    ]


def test_nobody_signs_off_their_own_request(facility, staff):
    instruction = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=staff["credit"]
    )
    with writes_nothing(), pytest.raises(FourEyesViolation, match="a second member of staff must decide it"):
        approval_request_approve(request=pending_sign_off_of(instruction), actor=staff["credit"])
    sign_off(instruction, staff["credit2"])
    assert instruction.status == InstructionStatus.ACTIVE


def test_the_database_refuses_a_sign_off_by_the_requester(facility, staff):
    instruction = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=staff["credit"]
    )
    with (
        pytest.raises(IntegrityError, match="top_up_instruction_not_signed_off_by_requester"),
        transaction.atomic(),
    ):
        StandingTopUpInstruction.objects.filter(pk=instruction.pk).update(
            status=InstructionStatus.ACTIVE, signed_off_by=staff["credit"], signed_off_at=timezone.now()
        )


@pytest.mark.parametrize("who", ["client", "ops", "compliance"])
def test_only_staff_with_the_permission_sign_off(facility, client_login, staff, who):
    instruction = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=staff["credit"]
    )
    actor = client_login if who == "client" else staff[who]
    with writes_nothing(), pytest.raises(PermissionRefused):
        approval_request_approve(request=pending_sign_off_of(instruction), actor=actor)


def test_credit_and_risk_officers_hold_the_sign_off_permission(staff):
    assert staff["credit"].has_perm("financing.approve_standing_top_up")
    assert staff["risk"].has_perm("financing.approve_standing_top_up")
    assert not staff["ops"].has_perm("financing.approve_standing_top_up")
    assert not staff["compliance"].has_perm("financing.approve_standing_top_up")


def test_a_rejected_or_cancelled_sign_off_ends_the_instruction(facility, client_login, staff):
    instruction = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=client_login
    )
    approval_request_reject(
        request=pending_sign_off_of(instruction), actor=staff["credit"], note="no custody"
    )
    instruction.refresh_from_db()
    assert (instruction.status, instruction.revoked_by, instruction.revoke_reason) == (
        InstructionStatus.REVOKED,
        staff["credit"],
        "sign-off refused: no custody",
    )
    second = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=staff["credit"]
    )
    approval_request_cancel(request=pending_sign_off_of(second), actor=staff["credit"])
    second.refresh_from_db()
    assert second.status == InstructionStatus.REVOKED
    assert second.revoke_reason == "the request for sign-off was cancelled by its maker"


def test_revoking_a_pending_instruction_withdraws_its_sign_off(facility, client_login, staff):
    instruction = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=client_login
    )
    approval = pending_sign_off_of(instruction)
    standing_top_up_revoke(instruction=instruction, actor=client_login)
    approval.refresh_from_db()
    instruction.refresh_from_db()
    assert instruction.status == InstructionStatus.REVOKED
    assert instruction.revoke_reason == f"revoked by {client_login.username}"
    assert approval.status == ApprovalStatus.CANCELLED
    assert (
        approval.decision_note
        == f"standing instruction #{instruction.pk} revoked: revoked by {client_login.username}"
    )
    assert AuditEvent.objects.filter(action="approval.withdrawn", target_id=str(approval.pk)).exists()
    assert not ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).exists()


def test_a_new_instruction_signed_off_replaces_the_active_one(facility, client_login, staff):
    first = active_instruction(facility, client_login, staff["credit"])
    second = active_instruction(
        facility, client_login, staff["risk"], trigger=TopUpTrigger.WARNING, order=["BTC"]
    )
    first.refresh_from_db()
    assert first.status == InstructionStatus.REVOKED
    assert first.revoke_reason == f"replaced by standing instruction #{second.pk}"
    assert standing_top_up_instruction_of(facility.client) == second


def test_the_database_keeps_one_active_instruction_per_client(facility, client_login, staff):
    first = active_instruction(facility, client_login, staff["credit"])
    second = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=client_login
    )
    with (
        pytest.raises(IntegrityError, match="one_active_top_up_instruction_per_client"),
        transaction.atomic(),
    ):
        StandingTopUpInstruction.objects.filter(pk=second.pk).update(
            status=InstructionStatus.ACTIVE, signed_off_by=staff["credit"], signed_off_at=timezone.now()
        )
    assert first.status == InstructionStatus.ACTIVE


# --- refusals write nothing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "trigger", "error", "message"),
    [
        (["HKD"], "margin_call", InvalidInput, "HKD is cash; cash is always moved first"),
        (["DOGE"], "margin_call", InvalidInput, "there is no asset DOGE"),
        (["BTC", "btc"], "margin_call", InvalidInput, "BTC named more than once"),
        ("BTC", "margin_call", InvalidInput, "a list of asset symbols"),
        (["BTC"], "sometimes", InvalidInput, "'sometimes' is not one of margin_call, warning"),
        (["0700.HK"], "margin_call", AssetNotEligible, "0700.HK is not eligible collateral"),
    ],
)
def test_a_bad_request_is_refused_and_writes_nothing(
    facility, client_login, market, order, trigger, error, message
):
    market["0700.HK"].eligible = False
    market["0700.HK"].save(update_fields=["eligible"])
    with writes_nothing(), pytest.raises(error, match=message):
        standing_top_up_request(
            client=facility.client, trigger=trigger, asset_order=order, actor=client_login
        )


def test_who_may_ask_and_revoke(facility, client_login, staff):
    other_client_user = client_user(facility_with_pool().client)
    for actor, message in (
        (other_client_user, "only for their own client"),
        (staff["ops"], "may not ask for a standing top-up instruction"),
        (SYSTEM, "Only a named person may ask"),
    ):
        with writes_nothing(), pytest.raises(PermissionRefused, match=message):
            standing_top_up_request(
                client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=actor
            )
    instruction = active_instruction(facility, client_login, staff["credit"])
    for actor in (other_client_user, staff["ops"], staff["compliance"], SYSTEM):
        with writes_nothing(), pytest.raises(PermissionRefused):
            standing_top_up_revoke(instruction=instruction, actor=actor)
    standing_top_up_revoke(instruction=instruction, actor=client_login)
    with writes_nothing(), pytest.raises(InvalidTransition, match="already revoked"):
        standing_top_up_revoke(instruction=instruction, actor=staff["credit"])


def test_one_instruction_waits_for_sign_off_at_a_time(facility, client_login, staff):
    standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=[], actor=client_login
    )
    with writes_nothing(), pytest.raises(DuplicatePendingRequest, match="already waiting for sign-off"):
        standing_top_up_request(
            client=facility.client, trigger=TopUpTrigger.WARNING, asset_order=[], actor=staff["credit"]
        )


def test_an_unknown_trigger_is_refused_by_the_top_up(facility):
    with writes_nothing(), pytest.raises(InvalidInput, match="is not one of"):
        automatic_top_up_run(facility=facility, actor=SYSTEM, trigger="whenever")


def test_emails_of_the_top_up_reach_the_client_through_the_outbox(
    facility, client_login, staff, django_capture_on_commit_callbacks
):
    receive(facility.client, "HKD", "100000.00")
    active_instruction(facility, client_login, staff["credit"])
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        btc_at("80000")
    to_client = sorted(m.subject for m in mail.outbox if m.to == [facility.client.email])
    assert any(
        s.startswith(f"[Margin] Automatic top-up on {facility.reference}: moved 62400 HKD") for s in to_client
    )
    assert any(s.startswith("[Margin] Margin call #") and "cured" in s for s in to_client)
