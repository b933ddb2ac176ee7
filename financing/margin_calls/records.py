"""Margin calls and forced-sale requests as plain values, and how their records word them: the audit events,
the events told to the client, staff and webhooks, and the notices of a margin status."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from accounts.audit import Actor, AuditSpec, TargetRef, decimal_text
from collateral.calculations import Cure, cure_amounts
from core.calendar import HONG_KONG
from core.db import id_in
from core.exceptions import InvalidTransition
from core.money import HKD, format_hkd, format_percent
from financing.calculations import MarginFigures, Thresholds
from financing.enums import (
    MARGIN_CALL_TRANSITIONS,
    ForcedSaleStatus,
    ForcedSaleTrigger,
    MarginCallStatus,
)
from financing.models import Facility, ForcedSale, MarginCall, MarginPolicy
from notifications.services import ClientRef, EventSpec


@dataclass(frozen=True)
class FacilityRef:
    """A facility as margin calls and forced sales name it: its id, reference, policy, status and client."""

    pk: int
    reference: str
    client: ClientRef
    policy_id: int | None = None
    status: str = ""

    @classmethod
    def of(cls, facility: Facility) -> FacilityRef:
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
    facility: FacilityRef
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
            FacilityRef.of(call.facility),
            call.status,
            call.ratio_at_issue,
            call.debt_at_issue.amount,
            call.margin_value_at_issue.amount,
            call.repayment_due.amount,
            call.top_up_due.amount,
            call.deadline,
        )

    @classmethod
    def loaded(cls, ids: list[int], facilities: dict[int, FacilityRef]) -> dict[int, CallValues]:
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
    facility: FacilityRef
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
    *,
    facility: FacilityRef,
    figures: MarginFigures,
    policy: MarginPolicy,
    deadline: datetime.datetime,
    cash_top_up: Decimal | None = None,
) -> CallValues:
    """A call stating what cures it — a repayment or a cash top-up that brings the ratio to the policy's
    target — and the deadline (``cure_deadline``: the policy's cure time, that many Hong Kong business
    days after the call is issued). ``cash_top_up``: the exact amount where a concentration cut binds
    (``financing.selectors.cash_top_ups_to_target``); otherwise ``D/T − LV``, exact then."""
    cure = cure_amounts(figures.debt, figures.margin_value, policy.target)
    if cash_top_up is not None:
        cure = Cure(cure.repayment, cash_top_up)
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


@dataclass(frozen=True)
class Notice:
    """A warning (``thresholds`` given: the policy's warning and margin-call levels) or the news that a
    facility is back within limits (no thresholds)."""

    facility: FacilityRef
    figures: MarginFigures
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


def handover_reason(sale: SaleValues) -> str:
    return f"forced sale #{sale.pk}"
