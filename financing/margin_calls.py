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

from accounts.audit import Actor, AuditSpec, TargetRef, audit_events_record, decimal_text
from collateral.calculations import cure_amounts, ratio_above
from collateral.selectors import pool_holdings
from core.calendar import HONG_KONG, cure_deadline
from core.db import bulk_insert_with_pks, id_in
from core.exceptions import InvalidInput, InvalidTransition
from core.locks import lock_one
from core.money import format_hkd, format_percent
from core.tasks import task_queue_on_commit
from financing.calculations import Thresholds
from financing.enums import (
    MARGIN_CALL_TRANSITIONS,
    OPEN_MARGIN_CALL_STATUSES,
    ForcedSaleStatus,
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
from notifications.services import ClientRef, EventSpec, events_record

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
#
# Calls and sales are worded from plain values (``Party``, ``CallValues``, ``SaleValues``), never from model
# instances: the ladder writes thousands at a time, and building an instance (and a Money per amount) for
# each cost more than the writing. One-at-a-time callers turn an instance into values (``CallValues.of``).


@dataclass(frozen=True)
class Party:
    """A facility as margin calls and forced sales name it: its id, reference, policy, status and client."""

    pk: int
    reference: str
    client: ClientRef
    policy_id: int | None = None
    status: str = ""

    @classmethod
    def of(cls, facility: Facility) -> Party:
        return cls(
            facility.pk,
            facility.reference,
            ClientRef(facility.client_id, facility.client.email),
            facility.policy_id,
            facility.status,
        )

    def target(self) -> TargetRef:
        """The facility as an event's subject (an event names its subject by type and id only)."""
        return TargetRef(Facility, self.pk, self.reference)


@dataclass
class CallValues:
    """A margin call as its records word it: one the ladder is about to write, or one loaded."""

    pk: int | None
    facility: Party
    status: str
    ratio_at_issue: Decimal | None
    debt_at_issue: Decimal
    margin_value_at_issue: Decimal
    repayment_due: Decimal
    top_up_due: Decimal
    deadline: datetime.datetime

    @classmethod
    def of(cls, call: MarginCall) -> CallValues:
        return cls(
            call.pk,
            Party.of(call.facility),
            call.status,
            call.ratio_at_issue,
            call.debt_at_issue.amount,
            call.margin_value_at_issue.amount,
            call.repayment_due.amount,
            call.top_up_due.amount,
            call.deadline,
        )

    @classmethod
    def loaded(cls, ids: list[int], facilities: dict[int, Party]) -> dict[int, CallValues]:
        """The calls ``ids`` read as plain values in one query, by facility (each facility in ``facilities``)."""
        rows = MarginCall.objects.filter(id_in("pk", ids)).values_list(
            "id", "facility_id", "status", "ratio_at_issue", "debt_at_issue", "margin_value_at_issue",
            "repayment_due", "top_up_due", "deadline",
        )  # fmt: skip
        return {row[1]: cls(row[0], facilities[row[1]], *row[2:]) for row in rows}

    def target(self) -> TargetRef:
        return TargetRef(
            MarginCall, self.pk, MarginCall.label_of(self.pk, self.facility.reference, self.status)
        )


@dataclass
class SaleValues:
    """A forced sale as its request is worded."""

    pk: int | None
    facility: Party
    trigger: str
    ratio_at_request: Decimal | None
    margin_call: CallValues | None  # the call it takes over (or, asked for again, the one it was linked to)

    def target(self) -> TargetRef:
        return TargetRef(
            ForcedSale,
            self.pk,
            ForcedSale.label_of(self.pk, self.facility.reference, ForcedSaleStatus.PLANNED),
        )


def margin_call_build(
    *, facility: Party, figures: Figures, policy: MarginPolicy, deadline: datetime.datetime
) -> CallValues:
    """A call stating what cures it — a repayment or a cash top-up that brings the ratio to the policy's
    target — and the deadline (``cure_deadline``: the policy's cure time, that many Hong Kong business
    days after the call is issued)."""
    cure = cure_amounts(figures.debt, figures.margin_value, policy.target)
    return CallValues(
        None,
        facility,
        MarginCallStatus.ISSUED,
        figures.margin_ratio,
        figures.debt,
        figures.margin_value,
        cure.repayment,
        cure.cash_top_up,
        deadline,
    )


def margin_call_payload(call: CallValues) -> dict:
    return {
        "margin_call": call.pk,
        "facility": call.facility.reference,
        "status": call.status,
        "margin_ratio_at_issue": call.ratio_at_issue,
        "debt_at_issue": call.debt_at_issue,
        "margin_value_at_issue": call.margin_value_at_issue,
        "repayment_due": call.repayment_due,
        "top_up_due": call.top_up_due,
        "deadline": call.deadline,
    }


def _hkd(amount: Decimal) -> dict:
    return {"amount": decimal_text(amount), "currency": HKD}  # as ``snapshot`` renders a Money field


def margin_call_issued_records(call: CallValues, actor: Actor) -> tuple[AuditSpec, EventSpec]:
    facility = call.facility
    return (
        AuditSpec(
            actor,
            "margin_call.issued",
            call.target(),
            after={
                "ratio_at_issue": call.ratio_at_issue,
                "debt_at_issue": _hkd(call.debt_at_issue),
                "repayment_due": _hkd(call.repayment_due),
                "top_up_due": _hkd(call.top_up_due),
                "deadline": call.deadline,
            },
        ),
        EventSpec(
            type="margin_call.issued",
            summary=(
                f"Margin call on {facility.reference}: ratio {format_percent(call.ratio_at_issue)}; repay "
                f"{format_hkd(call.repayment_due)} or top up {format_hkd(call.top_up_due)} cash by "
                f"{call.deadline.astimezone(HONG_KONG):%Y-%m-%d %H:%M} HKT"
            ),
            payload=margin_call_payload(call),
            client=facility.client,
            subject=call.target(),
        ),
    )


CALL_EVENT_WORDS = {
    MarginCallStatus.CURED: "cured",
    MarginCallStatus.ESCALATED: "escalated: its deadline passed",
    MarginCallStatus.FORCED_SALE: "handed to a forced sale",
}


def margin_call_transition_check(pk: int | None, current: str, status: str) -> None:
    """Refuse a move the call's workflow does not allow (``MARGIN_CALL_TRANSITIONS``)."""
    if status not in MARGIN_CALL_TRANSITIONS[current]:
        raise InvalidTransition(
            f"Margin call #{pk} is {MarginCallStatus(current).label.lower()}; it cannot become {status}."
        )


def margin_call_move(call: MarginCall, status: str, reason: str, now: datetime.datetime) -> str:
    """Change a call's status in memory (the caller saves it). Returns the status it had."""
    margin_call_transition_check(call.pk, call.status, status)
    before = call.status
    call.status = status
    if status == MarginCallStatus.ESCALATED:
        call.escalated_at = now
    else:
        call.closed_at = now
        call.close_reason = reason[:300]
    return before


def margin_call_moved_records(
    call: MarginCall | CallValues, before: str, reason: str, actor: Actor
) -> tuple[AuditSpec, EventSpec]:
    values = call if isinstance(call, CallValues) else CallValues.of(call)
    return (
        AuditSpec(
            actor,
            f"margin_call.{values.status}",
            values.target(),
            before={"status": before},
            after={"status": values.status, "reason": reason},
        ),
        EventSpec(
            type=f"margin_call.{values.status}",
            summary=f"Margin call #{values.pk} on {values.facility.reference} {CALL_EVENT_WORDS[values.status]}"
            + (f" ({reason})" if reason else ""),
            payload={**margin_call_payload(values), "reason": reason},
            client=values.facility.client,
            subject=values.target(),
        ),
    )


def forced_sale_requested_records(sale: SaleValues, actor: Actor) -> tuple[AuditSpec, EventSpec]:
    facility = sale.facility
    call_id = sale.margin_call.pk if sale.margin_call is not None else None
    return (
        AuditSpec(
            actor,
            "forced_sale.requested",
            sale.target(),
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
            subject=sale.target(),
        ),
    )


# --- notices: a facility's margin status told, nothing else done ---------------------------------------


@dataclass(frozen=True)
class Notice:
    """A warning (``thresholds`` given: the policy's warning and margin-call levels) or the news that a
    facility is back within limits (no thresholds)."""

    facility: Party
    figures: Figures
    thresholds: Thresholds | None = None

    @property
    def type(self) -> str:
        return "margin.warning" if self.thresholds is not None else "margin.restored"


def notice_payload(notice: Notice) -> dict:
    figures = notice.figures
    return {
        "facility": notice.facility.reference,
        "margin_ratio": figures.margin_ratio,
        "margin_value": figures.margin_value,
        "debt": figures.debt,
        "status": figures.status,
    }


def notice_event(notice: Notice) -> EventSpec:
    facility, figures, thresholds = notice.facility, notice.figures, notice.thresholds
    if thresholds is not None:
        summary = (
            f"{facility.reference} is at {format_percent(figures.margin_ratio)}, at or above the warning "
            f"level of {format_percent(thresholds.warning)}: a margin call follows above "
            f"{format_percent(thresholds.margin_call)}"
        )
    else:
        summary = f"{facility.reference} is back within limits at {format_percent(figures.margin_ratio)}"
    return EventSpec(
        type=notice.type,
        summary=summary,
        payload=notice_payload(notice),
        client=facility.client,
        subject=facility.target(),
        notify_staff=thresholds is not None,  # staff hear of a warning, not of a recovery
    )


# --- many at once -------------------------------------------------------------------------------------

CALL_COLUMNS = ["facility_id", "status", "ratio_at_issue", "debt_at_issue", "margin_value_at_issue",
                "repayment_due", "top_up_due", "deadline"]  # fmt: skip
SALE_COLUMNS = [
    "facility_id",
    "margin_call_id",
    "trigger",
    "ratio_at_request",
]  # issued_at, requested_at: now


def handover_reason(sale: SaleValues) -> str:
    return f"forced sale #{sale.pk}"


@dataclass
class LadderBatch:
    """Calls to issue, sales to request, calls to hand over, and notices: collected per facility as plain
    values, then written together (``write``) in the caller's transaction. On PostgreSQL one statement words
    and writes them all (``financing.ladder_sql``); elsewhere ``write_in_python`` builds the rows here. The
    two write the same records (the tests run both)."""

    actor: Actor
    now: datetime.datetime = field(default_factory=timezone.now)
    new_calls: list[CallValues] = field(default_factory=list)
    new_sales: list[SaleValues] = field(default_factory=list)
    handed_over: list[CallValues] = field(default_factory=list)  # open calls to hand to their new sale
    notices: list[Notice] = field(default_factory=list)
    deadlines: dict[tuple, datetime.datetime] = field(default_factory=dict)  # per cure time and business days

    def issue_call(self, facility: Party, figures: Figures, policy: MarginPolicy) -> CallValues:
        key = (policy.cure_business_days, policy.cure_time)
        if key not in self.deadlines:  # in UTC, as stored and as a loaded call gives it in its records
            self.deadlines[key] = cure_deadline(self.now, *key).astimezone(datetime.UTC)
        call = margin_call_build(
            facility=facility, figures=figures, policy=policy, deadline=self.deadlines[key]
        )
        self.new_calls.append(call)
        return call

    def request_sale(
        self,
        facility: Party,
        figures: Figures,
        trigger: str,
        call: CallValues | None,
        *,
        hand_over: bool = True,
    ) -> SaleValues:
        """A sale to request; ``call`` (open) is handed over to it, or (``hand_over`` false) only linked."""
        sale = SaleValues(None, facility, trigger, figures.margin_ratio, call)
        self.new_sales.append(sale)
        if call is not None and hand_over:
            margin_call_transition_check(call.pk, call.status, MarginCallStatus.FORCED_SALE)
            self.handed_over.append(call)
        return sale

    def warn(self, facility: Party, figures: Figures, thresholds: Thresholds) -> None:
        self.notices.append(Notice(facility, figures, thresholds))

    def restored(self, facility: Party, figures: Figures) -> None:
        self.notices.append(Notice(facility, figures))

    @property
    def warned(self) -> list[Party]:
        return [notice.facility for notice in self.notices if notice.thresholds is not None]

    def write(self) -> int:
        """Write everything collected; returns the actions taken (calls, sales and notices)."""
        if connection.vendor == "postgresql":
            from financing.ladder_sql import ladder_batch_write  # it words what this module collects

            ladder_batch_write(self)
        else:
            self.write_in_python()
        if self.new_sales:  # one message for the batch; each sale has its key once written
            task_queue_on_commit("financing.forced_sales_start", [sale.pk for sale in self.new_sales])
        return len(self.new_calls) + len(self.new_sales) + len(self.notices)

    def handed_statuses(self) -> list[str]:
        """Mark the calls handed over as such (they were written so); returns the statuses they had."""
        before = [call.status for call in self.handed_over]
        for call in self.handed_over:
            call.status = MarginCallStatus.FORCED_SALE
        return before

    def write_in_python(self) -> None:
        """The rows built here, one list per table, and written with COPY (``bulk_insert_rows``)."""
        bulk_insert_with_pks(
            MarginCall,
            CALL_COLUMNS,
            self.new_calls,
            lambda c: (c.facility.pk, c.status, c.ratio_at_issue, c.debt_at_issue, c.margin_value_at_issue,
                       c.repayment_due, c.top_up_due, c.deadline),
        )  # fmt: skip
        records = [margin_call_issued_records(call, self.actor) for call in self.new_calls]
        bulk_insert_with_pks(
            ForcedSale,
            SALE_COLUMNS,
            self.new_sales,
            lambda s: (
                s.facility.pk,
                s.margin_call.pk if s.margin_call else None,
                s.trigger,
                s.ratio_at_request,
            ),
        )
        records += [forced_sale_requested_records(sale, self.actor) for sale in self.new_sales]
        sale_of_call = {id(sale.margin_call): sale for sale in self.new_sales if sale.margin_call}
        handed = []
        for call, before in zip(self.handed_over, self.handed_statuses(), strict=True):
            reason = handover_reason(sale_of_call[id(call)])
            records.append(margin_call_moved_records(call, before, reason, self.actor))
            handed.append((call.status, self.now, reason, call.pk))
        if handed:  # one prepared statement, pipelined: far cheaper than bulk_update's CASEs
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {MarginCall._meta.db_table} SET status = %s, closed_at = %s, close_reason = %s "
                    "WHERE id = %s",
                    handed,
                )
        audit_events_record([audit for audit, _ in records])
        events_record([*(notice_event(notice) for notice in self.notices), *(event for _, event in records)])


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
    call = batch.issue_call(Party.of(facility), figures, policy)
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
        Party.of(facility),
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
