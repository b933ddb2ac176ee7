"""Margin calls one at a time: issue, move along the workflow, look again after a change, and hand to a
forced sale."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from djmoney.money import Money

from accounts.audit import Actor, AuditSpec, audit_events_record
from collateral.calculations import cure_amounts, ratio_above
from collateral.selectors import pool_holdings
from core.calendar import HONG_KONG
from core.exceptions import InvalidInput
from core.locks import lock_one
from core.money import HKD, format_hkd, format_percent
from financing.calculations import MarginFigures
from financing.enums import (
    OPEN_MARGIN_CALL_STATUSES,
    MarginCallStatus,
)
from financing.locks import facility_and_pool_lock
from financing.margin_calls.batch import LadderBatch
from financing.margin_calls.records import (
    CallValues,
    FacilityRef,
    margin_call_move,
    margin_call_moved_records,
    margin_call_payload,
)
from financing.models import Facility, ForcedSale, MarginCall
from financing.selectors import (
    cash_top_ups_to_target,
    open_forced_sale,
    open_margin_call,
    policy_for,
    valuation_for_holdings,
)
from notifications.services import EventSpec, events_record


def _lock_and_value(facility: Facility) -> tuple[Facility, MarginFigures]:
    facility, pool = facility_and_pool_lock(facility)
    valuation = valuation_for_holdings(facility, pool_holdings(pool) if pool else {})
    return facility, MarginFigures.of(valuation)


@transaction.atomic
def margin_call_issue(*, facility: Facility, actor: Actor) -> MarginCall:
    """Issue a margin call on a facility whose ratio is above the margin-call threshold (at most one open
    call per facility: asking again returns it)."""
    facility, figures = _lock_and_value(facility)
    existing = open_margin_call(facility)
    if existing is not None:
        return existing
    policy = policy_for(facility)
    if not ratio_above(figures.debt, figures.margin_value, policy.margin_call):
        raise InvalidInput(
            f"The margin ratio of {facility.reference} is {format_percent(figures.margin_ratio)}, not above the "
            f"margin-call threshold of {format_percent(policy.margin_call)}.",
            code="no_margin_call_needed",
        )
    batch = LadderBatch(actor=actor)
    exact = cash_top_ups_to_target([facility.pk]).get(facility.pk)
    call = batch.issue_call(FacilityRef.of(facility), figures, policy, cash_top_up=exact)
    batch.write()
    return MarginCall.objects.select_related("facility__client").get(pk=call.pk)


@transaction.atomic
def margin_call_transition(*, call: MarginCall, status: str, actor: Actor, reason: str = "") -> MarginCall:
    """Move a margin call along its workflow (issued → cured | escalated | forced sale; escalated → cured |
    forced sale), audited and notified."""
    call = lock_one(MarginCall, call.pk)
    before = margin_call_move(call, status, reason, timezone.now())
    call.save(update_fields=["status", "escalated_at", "closed_at", "close_reason"])
    audit, event = margin_call_moved_records(call, before, reason, actor)
    audit_events_record([audit])
    events_record([event])
    return call


@transaction.atomic
def forced_sale_request(
    *, facility: Facility, trigger: str, actor: Actor, margin_call: MarginCall | None = None
) -> ForcedSale:
    """Ask for collateral to be sold: at the forced-sale threshold at once, or when a margin call's deadline
    passes. At most one open forced sale per facility; asking again returns it. An open call is handed to
    the sale."""
    facility, figures = _lock_and_value(facility)
    existing = open_forced_sale(facility)
    if existing is not None:
        return existing
    if margin_call is not None:
        margin_call = lock_one(MarginCall, margin_call.pk)
    # An open call is handed over to the sale; one already handed over stays linked, for the record.
    linked = CallValues.of(margin_call) if margin_call is not None else None
    batch = LadderBatch(actor=actor)
    sale = batch.request_sale(
        FacilityRef.of(facility),
        figures,
        trigger,
        linked,
        hand_over=linked is not None and linked.status in OPEN_MARGIN_CALL_STATUSES,
    )
    batch.write()
    return ForcedSale.objects.select_related("facility__client", "margin_call").get(pk=sale.pk)


@transaction.atomic
def margin_call_reassess(*, call: MarginCall, actor: Actor, cause: str) -> str:
    """Look at an open call again after something changed (a top-up, a repayment, the market): cure it when
    the ratio is back at the policy's target, otherwise lower what is still due (never raise it: a call
    states the most the client owes to cure it; a worse market is the forced-sale threshold's business).
    Returns "cured", "lowered", "unchanged" or "closed" (the call was no longer open)."""
    facility, figures = _lock_and_value(call.facility)
    call = lock_one(MarginCall, call.pk)
    if call.status not in OPEN_MARGIN_CALL_STATUSES:
        return "closed"
    policy = policy_for(facility)
    if not ratio_above(figures.debt, figures.margin_value, policy.target):
        reason = (
            f"{cause}: ratio {format_percent(figures.margin_ratio)} is at or below the target of "
            f"{format_percent(policy.target)}"
        )
        before = margin_call_move(call, MarginCallStatus.CURED, reason, timezone.now())
        call.save(update_fields=["status", "closed_at", "close_reason"])
        audit, event = margin_call_moved_records(call, before, reason, actor)
        audit_events_record([audit])
        events_record([event])
        return "cured"
    call.facility = facility  # loaded and locked above
    cure = cure_amounts(figures.debt, figures.margin_value, policy.target)
    exact = cash_top_ups_to_target([facility.pk]).get(facility.pk, cure.cash_top_up)
    repayment = min(cure.repayment, call.repayment_due.amount)
    top_up = min(exact, call.top_up_due.amount)
    if (repayment, top_up) == (call.repayment_due.amount, call.top_up_due.amount):
        return "unchanged"
    before = {"repayment_due": call.repayment_due.amount, "top_up_due": call.top_up_due.amount}
    call.repayment_due, call.top_up_due = Money(repayment, HKD), Money(top_up, HKD)
    call.save(update_fields=["repayment_due", "top_up_due"])
    audit_events_record(
        [
            AuditSpec(
                actor,
                "margin_call.amount_due_lowered",
                call,
                before=before,
                after={"repayment_due": repayment, "top_up_due": top_up, "cause": cause},
            )
        ]
    )
    events_record(
        [
            EventSpec(
                type="margin_call.updated",
                summary=(
                    f"Margin call #{call.pk} on {facility.reference} after {cause}: still due, repay {format_hkd(repayment)} "
                    f"or top up {format_hkd(top_up)} cash by {call.deadline.astimezone(HONG_KONG):%Y-%m-%d %H:%M} HKT"
                ),
                payload={
                    **margin_call_payload(CallValues.of(call)),
                    "cause": cause,
                    "margin_ratio": figures.margin_ratio,
                },
                client=facility.client,
                subject=call,
            )
        ]
    )
    return "lowered"
