"""What the margin-call ladder writes about calls and sales, against the stored rows.

A batch words its calls, sales and events from plain values, never from model instances (it writes
thousands at a time). Each test here reads the stored call or sale back and checks that every record says
what the row says, in the words and the JSON the instance-based helpers (``str(call)``, ``snapshot``) give."""

from decimal import Decimal

import pytest

from accounts.audit import SYSTEM, json_value, snapshot
from accounts.models import AuditEvent
from financing.enums import ForcedSaleTrigger, MarginCallStatus, MarginStatus
from financing.margin_calls import (
    CallValues,
    margin_call_issue,
    margin_call_issued_records,
    margin_call_moved_records,
)
from financing.models import ForcedSale, MarginCall, MarginState
from financing.services import drawdown_create
from financing.sweep import sweep_run
from notifications.models import Event
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db


def drawn(amount: str):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount=amount, actor=SYSTEM)
    return facility


def btc_at(value: str) -> None:
    price("BTC", value)
    sweep_run(symbols=["BTC"], trigger="test")


def event_about(type: str, subject) -> Event:
    return Event.objects.get(type=type, subject_id=str(subject.pk))


def audit_of(action: str, target) -> AuditEvent:
    return AuditEvent.objects.get(action=action, target_id=str(target.pk))


def assert_issue_recorded_as_stored(call: MarginCall) -> None:
    """The call's ``margin_call.issued`` event and audit event say what its row says."""
    call.status = MarginCallStatus.ISSUED  # as it was when issued
    _, event_spec = margin_call_issued_records(CallValues.of(call), SYSTEM)
    event = event_about("margin_call.issued", call)
    assert (event.summary, event.payload, event.client_id, event.subject_type) == (
        event_spec.summary,
        json_value(event_spec.payload),
        call.facility.client_id,
        "financing.margincall",
    )
    assert event.payload["repayment_due"] == str(call.repayment_due.amount)
    assert event.payload["deadline"] == call.deadline.isoformat()
    audit = audit_of("margin_call.issued", call)
    assert audit.target_repr == str(call)
    assert audit.after == snapshot(
        call, ["ratio_at_issue", "debt_at_issue", "repayment_due", "top_up_due", "deadline"]
    )
    assert audit.actor_label == "system"


def test_each_record_of_one_batch_says_what_the_stored_rows_say(market):
    """One price move warns one facility, calls another, and sends two to a forced sale: one with the call
    an earlier move issued (loaded and handed over), one with a call issued in the same batch."""
    handed = drawn("265200.00")
    btc_at("80000")  # 106.25%: a call on the first
    warned, called, sold = drawn("160000.00"), drawn("180000.00"), drawn("212000.00")
    sweep_run(trigger="test")
    btc_at("56000")  # LV 174,720: 151.8%, 91.6%, 103.0%, 121.3%
    states = dict(MarginState.objects.values_list("facility_id", "notified_status"))
    assert [states[f.pk] for f in (handed, warned, called, sold)] == [
        MarginStatus.FORCED_SALE,
        MarginStatus.WARNING,
        MarginStatus.MARGIN_CALL,
        MarginStatus.FORCED_SALE,
    ]

    for call in MarginCall.objects.select_related("facility__client"):
        assert_issue_recorded_as_stored(call)

    for sale in ForcedSale.objects.select_related("facility__client", "margin_call__facility__client"):
        call = sale.margin_call
        assert (sale.trigger, call.status) == (ForcedSaleTrigger.THRESHOLD, MarginCallStatus.FORCED_SALE)
        event = event_about("forced_sale.requested", sale)
        assert event.payload == {
            "forced_sale": sale.pk,
            "facility": sale.facility.reference,
            "trigger": "threshold",
            "margin_ratio": str(sale.ratio_at_request),
            "margin_call": call.pk,
        }
        assert event.summary == (
            f"Forced sale requested on {sale.facility.reference}: ratio reached the forced-sale threshold (ratio "
            f"{(sale.ratio_at_request * 100).quantize(Decimal('0.01'))}%)"
        )
        audit = audit_of("forced_sale.requested", sale)
        assert (audit.target_repr, audit.after) == (
            str(sale),
            {"trigger": "threshold", "margin_ratio": str(sale.ratio_at_request), "margin_call": call.pk},
        )
        # The call handed over: moved to the sale, saying so, with the reason the row keeps.
        assert call.close_reason == f"forced sale #{sale.pk}"
        _, event_spec = margin_call_moved_records(call, "issued", call.close_reason, SYSTEM)
        event = event_about("margin_call.forced_sale", call)
        assert (event.summary, event.payload) == (event_spec.summary, json_value(event_spec.payload))
        audit = audit_of("margin_call.forced_sale", call)
        assert (audit.target_repr, audit.before, audit.after) == (
            str(call),
            {"status": "issued"},
            {"status": "forced_sale", "reason": f"forced sale #{sale.pk}"},
        )

    warning = event_about("margin.warning", warned)
    state = MarginState.objects.get(facility=warned)
    assert (warning.subject_type, warning.client_id) == ("financing.facility", warned.client_id)
    assert warning.payload == {
        "facility": warned.reference,
        "margin_ratio": str(state.margin_ratio),
        "margin_value": str(state.margin_value),
        "debt": str(state.debt),
        "status": "warning",
    }


def test_a_call_issued_by_staff_is_recorded_as_one_issued_by_the_ladder(market):
    facility = drawn("265200.00")
    price("BTC", "80000")
    call = margin_call_issue(facility=facility, actor=SYSTEM)
    assert_issue_recorded_as_stored(call)
