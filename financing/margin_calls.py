"""Margin calls and forced-sale requests.

They are built by small functions (what a call demands, what is audited, what is told to whom), used both
one at a time — staff, the API, the deadline escalation — and many at once by the margin-call ladder after
a sweep (``LadderBatch``), which writes a whole book's worth in a few statements."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from djmoney.money import Money

from accounts.audit import Actor, AuditSpec, audit_events_record, snapshot
from collateral.calculations import cure_amounts, ratio_above
from collateral.selectors import pool_holdings
from core.calendar import HONG_KONG, cure_deadline
from core.db import bulk_insert
from core.exceptions import InvalidInput, InvalidTransition
from core.locks import lock_one
from core.money import format_hkd, format_percent
from financing.enums import (
    MARGIN_CALL_TRANSITIONS,
    OPEN_MARGIN_CALL_STATUSES,
    ForcedSaleTrigger,
    MarginCallStatus,
)
from financing.locks import facility_and_pool_lock
from financing.models import Facility, ForcedSale, MarginCall, MarginPolicy
from financing.selectors import (
    open_forced_sale,
    open_margin_call,
    policy_for,
    valuation_for_holdings,
)
from notifications.services import EventSpec, events_record

HKD = "HKD"


@dataclass(frozen=True)
class Figures:
    """A facility's valuation at one moment."""

    market_value: Decimal
    margin_value: Decimal
    debt: Decimal
    margin_ratio: Decimal | None
    status: str


def figures_of(valuation) -> Figures:
    return Figures(
        valuation.market_value,
        valuation.margin_value,
        valuation.debt.total,
        valuation.margin_ratio,
        str(valuation.status),
    )


# --- building blocks ---------------------------------------------------------------------------------


def margin_call_build(
    *, facility: Facility, figures: Figures, policy: MarginPolicy, now: datetime.datetime
) -> MarginCall:
    """A call stating what cures it — a repayment or a cash top-up that brings the ratio to the policy's
    target — and the deadline: the policy's cure time, that many Hong Kong business days later."""
    cure = cure_amounts(figures.debt, figures.margin_value, policy.target)
    return MarginCall(
        facility=facility,
        ratio_at_issue=figures.margin_ratio,
        debt_at_issue=Money(figures.debt, HKD),
        margin_value_at_issue=Money(figures.margin_value, HKD),
        repayment_due=Money(cure.repayment, HKD),
        top_up_due=Money(cure.cash_top_up, HKD),
        deadline=cure_deadline(now, policy.cure_business_days, policy.cure_time),
        issued_at=now,
    )


def margin_call_payload(call: MarginCall) -> dict:
    return {
        "margin_call": call.pk,
        "facility": call.facility.reference,
        "status": call.status,
        "margin_ratio_at_issue": call.ratio_at_issue,
        "debt_at_issue": call.debt_at_issue.amount,
        "margin_value_at_issue": call.margin_value_at_issue.amount,
        "repayment_due": call.repayment_due.amount,
        "top_up_due": call.top_up_due.amount,
        "deadline": call.deadline,
    }


def margin_call_issued_records(call: MarginCall, actor: Actor) -> tuple[AuditSpec, EventSpec]:
    facility = call.facility
    return (
        AuditSpec(
            actor,
            "margin_call.issued",
            call,
            after=snapshot(
                call, ["ratio_at_issue", "debt_at_issue", "repayment_due", "top_up_due", "deadline"]
            ),
        ),
        EventSpec(
            type="margin_call.issued",
            summary=(
                f"Margin call on {facility.reference}: ratio {format_percent(call.ratio_at_issue)}; repay "
                f"{format_hkd(call.repayment_due.amount)} or top up {format_hkd(call.top_up_due.amount)} cash by "
                f"{call.deadline.astimezone(HONG_KONG):%Y-%m-%d %H:%M} HKT"
            ),
            payload=margin_call_payload(call),
            client=facility.client,
            subject=call,
        ),
    )


CALL_EVENT_WORDS = {
    MarginCallStatus.CURED: "cured",
    MarginCallStatus.ESCALATED: "escalated: its deadline passed",
    MarginCallStatus.FORCED_SALE: "handed to a forced sale",
}


def margin_call_move(call: MarginCall, status: str, reason: str, now: datetime.datetime) -> str:
    """Change a call's status in memory (the caller saves it). Returns the status it had."""
    if status not in MARGIN_CALL_TRANSITIONS[call.status]:
        raise InvalidTransition(
            f"Margin call #{call.pk} is {call.get_status_display().lower()}; it cannot become {status}."
        )
    before = call.status
    call.status = status
    if status == MarginCallStatus.ESCALATED:
        call.escalated_at = now
    else:
        call.closed_at = now
        call.close_reason = reason[:300]
    return before


def margin_call_moved_records(
    call: MarginCall, before: str, reason: str, actor: Actor
) -> tuple[AuditSpec, EventSpec]:
    return (
        AuditSpec(
            actor,
            f"margin_call.{call.status}",
            call,
            before={"status": before},
            after={"status": call.status, "reason": reason},
        ),
        EventSpec(
            type=f"margin_call.{call.status}",
            summary=f"Margin call #{call.pk} on {call.facility.reference} {CALL_EVENT_WORDS[call.status]}"
            + (f" ({reason})" if reason else ""),
            payload={**margin_call_payload(call), "reason": reason},
            client=call.facility.client,
            subject=call,
        ),
    )


def forced_sale_build(
    *, facility: Facility, trigger: str, figures: Figures, call: MarginCall | None
) -> ForcedSale:
    return ForcedSale(
        facility=facility, margin_call=call, trigger=trigger, ratio_at_request=figures.margin_ratio
    )


def forced_sale_requested_records(sale: ForcedSale, actor: Actor) -> tuple[AuditSpec, EventSpec]:
    facility = sale.facility
    call_id = sale.margin_call_id
    return (
        AuditSpec(
            actor,
            "forced_sale.requested",
            sale,
            after={"trigger": sale.trigger, "margin_ratio": sale.ratio_at_request, "margin_call": call_id},
        ),
        EventSpec(
            type="forced_sale.requested",
            summary=(
                f"Forced sale requested on {facility.reference}: {ForcedSaleTrigger(sale.trigger).label.lower()} "
                f"(ratio {format_percent(sale.ratio_at_request)})"
            ),
            payload={
                "forced_sale": sale.pk,
                "facility": facility.reference,
                "trigger": sale.trigger,
                "margin_ratio": sale.ratio_at_request,
                "margin_call": call_id,
            },
            client=facility.client,
            subject=sale,
        ),
    )


# --- many at once -------------------------------------------------------------------------------------


@dataclass
class LadderBatch:
    """Calls to issue, sales to request, calls to hand over, plus plain events: collected per facility,
    then written together (``write``) in the caller's transaction."""

    actor: Actor
    now: datetime.datetime = field(default_factory=timezone.now)
    new_calls: list[MarginCall] = field(default_factory=list)
    new_sales: list[ForcedSale] = field(default_factory=list)
    handed_over: list[MarginCall] = field(default_factory=list)  # open calls to hand to their new sale
    events: list[EventSpec] = field(default_factory=list)
    audits: list[AuditSpec] = field(default_factory=list)

    def issue_call(self, facility: Facility, figures: Figures, policy: MarginPolicy) -> MarginCall:
        call = margin_call_build(facility=facility, figures=figures, policy=policy, now=self.now)
        self.new_calls.append(call)
        return call

    def request_sale(
        self, facility: Facility, figures: Figures, trigger: str, call: MarginCall | None
    ) -> ForcedSale:
        sale = forced_sale_build(facility=facility, trigger=trigger, figures=figures, call=call)
        self.new_sales.append(sale)
        if call is not None:
            self.handed_over.append(call)
        return sale

    def write(self) -> int:
        bulk_insert(MarginCall, self.new_calls, with_pks=True)
        records = [margin_call_issued_records(call, self.actor) for call in self.new_calls]
        for sale in self.new_sales:
            sale.margin_call_id = sale.margin_call.pk if sale.margin_call else None
        bulk_insert(ForcedSale, self.new_sales, with_pks=True)
        if self.new_sales:
            from financing.tasks import (
                forced_sales_start,  # tasks import the services that import this module
            )

            ids = [sale.pk for sale in self.new_sales]
            transaction.on_commit(lambda: forced_sales_start.delay(ids))  # one message, however many sales
        records += [forced_sale_requested_records(sale, self.actor) for sale in self.new_sales]
        sale_of_call = {sale.margin_call.pk: sale for sale in self.new_sales if sale.margin_call}
        for call in self.handed_over:
            before = margin_call_move(
                call, MarginCallStatus.FORCED_SALE, f"forced sale #{sale_of_call[call.pk].pk}", self.now
            )
            records.append(margin_call_moved_records(call, before, call.close_reason, self.actor))
        if self.handed_over:  # one prepared statement, pipelined: far cheaper than bulk_update's CASEs
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {MarginCall._meta.db_table} SET status = %s, closed_at = %s, close_reason = %s "
                    "WHERE id = %s",
                    [(c.status, c.closed_at, c.close_reason, c.pk) for c in self.handed_over],
                )
        audit_events_record([*self.audits, *(audit for audit, _ in records)])
        events_record([*self.events, *(event for _, event in records)])
        return len(self.new_calls) + len(self.new_sales) + len(self.events)


# --- one at a time -------------------------------------------------------------------------------------


def _lock_and_value(facility: Facility) -> tuple[Facility, Figures]:
    facility, pool = facility_and_pool_lock(facility)
    valuation = valuation_for_holdings(facility, pool_holdings(pool) if pool else {})
    return facility, figures_of(valuation)


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
    call = batch.issue_call(facility, figures, policy)
    batch.write()
    return call


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
    hand_over = (
        margin_call if margin_call is not None and margin_call.status in OPEN_MARGIN_CALL_STATUSES else None
    )
    batch = LadderBatch(actor=actor)
    sale = batch.request_sale(facility, figures, trigger, hand_over)
    sale.margin_call = margin_call  # a call already handed over stays linked, for the record
    batch.write()
    return sale


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
    cure = cure_amounts(figures.debt, figures.margin_value, policy.target)
    repayment = min(cure.repayment, call.repayment_due.amount)
    top_up = min(cure.cash_top_up, call.top_up_due.amount)
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
                payload={**margin_call_payload(call), "cause": cause, "margin_ratio": figures.margin_ratio},
                client=facility.client,
                subject=call,
            )
        ]
    )
    return "lowered"
