"""What the margin-call ladder writes about calls and sales, against the stored rows.

A batch words its calls, sales and events from plain values, never from model instances (it writes
thousands at a time). Each test here reads the stored call or sale back and checks that every record says
what the row says, in the words and the JSON the instance-based helpers (``str(call)``, ``snapshot``) give.
Each runs twice: with the batch read, decided and written by one PostgreSQL statement (``ladder_apply_in_sql``,
what runs on PostgreSQL) and with the batch decided and its rows built in Python (``ladder_apply_in_python``,
``LadderBatch.write_in_python``: what runs elsewhere)."""

import time
import uuid
from decimal import Decimal

import pytest

from accounts.audit import SYSTEM, snapshot
from accounts.models import AuditEvent
from core.calendar import HONG_KONG
from financing.enums import ForcedSaleTrigger, MarginCallStatus, MarginStatus
from financing.lending.services import drawdown_create
from financing.margin_calls.services import margin_call_issue
from financing.models import ForcedSale, MarginCall, MarginState
from financing.monitoring.cycle import monitoring_cycle_run
from notifications.models import Event, OutboxMessage
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("both_ladders")]


def drawn(amount: str):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount=amount, actor=SYSTEM)
    return facility


def btc_at(value: str) -> None:
    price("BTC", value)
    monitoring_cycle_run(symbols=["BTC"], trigger="test")


def event_about(type: str, subject) -> Event:
    return Event.objects.get(type=type, subject_id=str(subject.pk))


def audit_of(action: str, target) -> AuditEvent:
    return AuditEvent.objects.get(action=action, target_id=str(target.pk))


def hkt(moment) -> str:
    return f"{moment.astimezone(HONG_KONG):%Y-%m-%d %H:%M} HKT"


def percent(ratio: Decimal) -> str:
    return f"{(ratio * 100).quantize(Decimal('0.01'))}%"


def assert_told_to_client_and_staff(event: Event, client_email: str) -> None:
    assert set(OutboxMessage.objects.filter(event=event).values_list("recipient", flat=True)) == {
        client_email,
        "risk@broker.example",
    }


def assert_issue_recorded_as_stored(call: MarginCall) -> None:
    """The call's ``margin_call.issued`` event and audit event say what its row says."""
    facility = call.facility
    event = event_about("margin_call.issued", call)
    assert (event.client_id, event.subject_type) == (facility.client_id, "financing.margincall")
    assert event.summary == (
        f"Margin call on {facility.reference}: ratio {percent(call.ratio_at_issue)}; repay "
        f"HK${call.repayment_due.amount:,} or top up HK${call.top_up_due.amount:,} cash by {hkt(call.deadline)}"
    )
    assert event.payload == {
        "margin_call": call.pk,
        "facility": facility.reference,
        "status": "issued",
        "margin_ratio_at_issue": str(call.ratio_at_issue),
        "debt_at_issue": str(call.debt_at_issue.amount),
        "margin_value_at_issue": str(call.margin_value_at_issue.amount),
        "repayment_due": str(call.repayment_due.amount),
        "top_up_due": str(call.top_up_due.amount),
        "deadline": call.deadline.isoformat(),  # UTC, as every later record of the call gives it
    }
    assert_told_to_client_and_staff(event, facility.client.email)
    audit = audit_of("margin_call.issued", call)
    # Named as it was when issued, even when the same batch then handed it to a sale.
    assert audit.target_repr == f"Margin call #{call.pk} on {facility.reference} (Issued)"
    assert audit.after == snapshot(
        call, ["ratio_at_issue", "debt_at_issue", "repayment_due", "top_up_due", "deadline"]
    )
    assert audit.actor_label == "system"


def test_each_record_of_one_batch_says_what_the_stored_rows_say(market):
    """One price move warns one facility, calls another, and sends two to a forced sale: one with the call
    an earlier move issued (loaded and handed over), one with a call issued in the same batch."""
    StaffFactory(role="Risk officer", email="risk@broker.example")
    handed = drawn("265200.00")
    btc_at("80000")  # 106.25%: a call on the first
    warned, called, sold = drawn("160000.00"), drawn("180000.00"), drawn("212000.00")
    monitoring_cycle_run(trigger="test")
    btc_at("56000")  # LV 174,720: 151.8%, 91.6%, 103.0%, 121.3%
    states = dict(MarginState.objects.values_list("facility_id", "notified_status"))
    assert [states[f.pk] for f in (handed, warned, called, sold)] == [
        MarginStatus.FORCED_SALE,
        MarginStatus.WARNING,
        MarginStatus.MARGIN_CALL,
        MarginStatus.FORCED_SALE,
    ]

    calls = {c.facility_id: c for c in MarginCall.objects.select_related("facility__client")}
    assert sorted(calls) == sorted([handed.pk, called.pk, sold.pk])
    assert calls[sold.pk].issued_at > calls[handed.pk].issued_at  # issued in the last batch, then handed over
    for call in calls.values():
        assert_issue_recorded_as_stored(call)

    sales = list(ForcedSale.objects.select_related("facility__client", "margin_call__facility__client"))
    assert sorted(s.facility_id for s in sales) == sorted([handed.pk, sold.pk])
    for sale in sales:
        call = sale.margin_call
        assert call == calls[sale.facility_id]
        assert (sale.trigger, call.status) == (ForcedSaleTrigger.THRESHOLD, MarginCallStatus.FORCED_SALE)
        event = event_about("forced_sale.requested", sale)
        assert (event.client_id, event.subject_type) == (sale.facility.client_id, "financing.forcedsale")
        assert_told_to_client_and_staff(event, sale.facility.client.email)
        assert event.payload == {
            "forced_sale": sale.pk,
            "facility": sale.facility.reference,
            "trigger": "threshold",
            "margin_ratio": str(sale.ratio_at_request),
            "margin_call": call.pk,
        }
        assert event.summary == (
            f"Forced sale requested on {sale.facility.reference}: ratio reached the forced-sale threshold (ratio "
            f"{percent(sale.ratio_at_request)})"
        )
        audit = audit_of("forced_sale.requested", sale)
        assert (audit.target_repr, audit.after) == (
            str(sale),
            {"trigger": "threshold", "margin_ratio": str(sale.ratio_at_request), "margin_call": call.pk},
        )
        # The call handed over: moved to the sale, saying so, with the reason the row keeps.
        assert call.close_reason == f"forced sale #{sale.pk}"
        event = event_about("margin_call.forced_sale", call)
        assert event.summary == (
            f"Margin call #{call.pk} on {sale.facility.reference} handed to a forced sale (forced sale #{sale.pk})"
        )
        assert event.payload == {
            "margin_call": call.pk,
            "facility": sale.facility.reference,
            "status": "forced_sale",
            "margin_ratio_at_issue": str(call.ratio_at_issue),
            "debt_at_issue": str(call.debt_at_issue.amount),
            "margin_value_at_issue": str(call.margin_value_at_issue.amount),
            "repayment_due": str(call.repayment_due.amount),
            "top_up_due": str(call.top_up_due.amount),
            "deadline": call.deadline.isoformat(),
            "reason": f"forced sale #{sale.pk}",
        }
        assert (event.client_id, event.subject_type) == (sale.facility.client_id, "financing.margincall")
        audit = audit_of("margin_call.forced_sale", call)
        assert (audit.target_repr, audit.before, audit.after) == (
            str(call),
            {"status": "issued"},
            {"status": "forced_sale", "reason": f"forced sale #{sale.pk}"},
        )

    warning = event_about("margin.warning", warned)
    state = MarginState.objects.get(facility=warned)
    assert (warning.subject_type, warning.client_id) == ("financing.facility", warned.client_id)
    assert warning.summary == (
        f"{warned.reference} is at {percent(state.margin_ratio)}, at or above the warning level of 90.00%: a "
        "margin call follows above 100.00%"
    )
    assert_told_to_client_and_staff(warning, warned.client.email)
    assert warning.payload == {
        "facility": warned.reference,
        "margin_ratio": str(state.margin_ratio),
        "margin_value": str(state.margin_value),
        "debt": str(state.debt),
        "status": "warning",
    }


def test_the_ladder_keys_its_events_in_time_order(market):
    """Each event a batch writes has a time-ordered key (UUID version 7: the milliseconds it was written at,
    then random bits), so a later batch's events sort after an earlier one's (``notifications`` migration 0002)."""
    before = time.time_ns() // 10**6
    drawn("265200.00")
    btc_at("80000")  # 106.25%: a call
    earlier = list(Event.objects.values_list("pk", flat=True))
    drawn("212000.00")
    time.sleep(0.002)
    btc_at("56000")  # a sale on the first, a call and a sale on the second
    later = list(Event.objects.exclude(pk__in=earlier).values_list("pk", flat=True))
    assert earlier
    assert later
    for key in [*earlier, *later]:
        assert (key.version, key.variant) == (7, uuid.RFC_4122)
        assert key.int >> 80 >= before
    assert max(earlier) < min(later)


def test_a_call_issued_by_staff_is_recorded_as_one_issued_by_the_ladder(market):
    StaffFactory(role="Risk officer", email="risk@broker.example")
    facility = drawn("265200.00")
    price("BTC", "80000")
    call = margin_call_issue(facility=facility, actor=SYSTEM)
    assert_issue_recorded_as_stored(call)


def test_a_batch_that_would_alert_staff_too_often_sends_them_one_digest(market, settings):
    """Four facilities cross the margin-call threshold in one batch, over a limit of three alerts: staff get
    one digest of the batch (the first alerts in words, in the batch's order), clients every event."""
    settings.STAFF_ALERT_DIGEST_ABOVE = 3
    settings.STAFF_ALERT_EMAILS = ["risk@broker.example"]
    facilities = [drawn(amount) for amount in ("180000.00", "181000.00", "182000.00", "183000.00")]
    btc_at("56000")  # LV 174,720: every one above 100%
    calls = list(MarginCall.objects.order_by("facility_id"))
    assert [c.facility_id for c in calls] == [f.pk for f in facilities]
    (to_staff,) = OutboxMessage.objects.filter(recipient="risk@broker.example")
    digest = to_staff.event
    assert (digest.type, digest.client_id) == ("alerts.digest", None)
    assert digest.summary == "4 alerts at once (4 margin_call.issued): see the at-risk list"
    first = [event_about("margin_call.issued", call).summary for call in calls]
    assert digest.payload == {"alerts": 4, "by_type": {"margin_call.issued": 4}, "first": first}
    for call in calls:
        event = event_about("margin_call.issued", call)
        assert list(OutboxMessage.objects.filter(event=event).values_list("recipient", flat=True)) == [
            call.facility.client.email
        ]
