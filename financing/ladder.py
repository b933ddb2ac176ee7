"""The margin-call ladder: what the platform does when a facility's margin status changes.

| status reached | action |
|---|---|
| warning (from below) | the client and staff are told |
| margin call | a margin call is issued: what cures it, and the deadline |
| forced sale | a forced sale is requested at once (the call, issued if need be, is handed to it) |
| back within limits | the client is told; an open call whose ratio is back at target is cured |

The sweep stores each facility's status in ``MarginState``; ``notified_status`` says what the ladder has
acted on. ``ladder_run`` handles every facility where the two differ, each in its own transaction, after
re-valuing it live under its lock (so it acts on the truth, not on a valuation a top-up has overtaken).
Separately, every open call whose facility is back at target is cured, and every issued call past its
deadline is escalated to a forced sale. All of it is idempotent: run it twice, the second run does
nothing."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.audit import SYSTEM, Actor
from collateral.calculations import ratio_above
from core.locks import lock_one
from core.money import format_percent
from financing.enums import OPEN_MARGIN_CALL_STATUSES, ForcedSaleTrigger, MarginCallStatus, MarginStatus
from financing.models import Facility, MarginCall, MarginState
from financing.selectors import facility_valuation, open_margin_call, policy_for
from financing.services import (
    forced_sale_request,
    hkd,
    margin_call_issue,
    margin_call_transition,
    open_forced_sale,
)
from notifications.services import event_record

logger = logging.getLogger(__name__)

BELOW_WARNING = (MarginStatus.NO_DEBT, MarginStatus.OK)


def _refresh_state(state: MarginState, valuation) -> None:
    state.market_value = valuation.market_value
    state.margin_value = valuation.margin_value
    state.debt = valuation.debt.total
    state.margin_ratio = valuation.margin_ratio
    if state.status != valuation.status:
        state.status_since = timezone.now()
    state.status = valuation.status
    state.valued_at = timezone.now()


@transaction.atomic
def ladder_step(*, facility_id: int, actor: Actor = SYSTEM) -> int:
    """Act on one facility whose status moved since the ladder last acted. Returns the actions taken."""
    facility = lock_one(Facility, facility_id)
    state = MarginState.objects.select_for_update().get(facility_id=facility_id)
    valuation = facility_valuation(facility)
    _refresh_state(state, valuation)
    before, now = state.notified_status, state.status
    actions = 0
    if now == before:
        state.save()
        return 0
    figures = {
        "facility": facility.reference,
        "margin_ratio": valuation.margin_ratio,
        "margin_value": valuation.margin_value,
        "debt": valuation.debt.total,
        "status": now,
    }
    if now == MarginStatus.WARNING and before in BELOW_WARNING:
        event_record(
            type="margin.warning",
            summary=(
                f"{facility.reference} is at {format_percent(valuation.margin_ratio)}, at or above the warning level of "
                f"{format_percent(valuation.thresholds.warning)}: a margin call follows above "
                f"{format_percent(valuation.thresholds.margin_call)}"
            ),
            payload=figures,
            client=facility.client,
            subject=facility,
        )
        actions += 1
    elif now == MarginStatus.MARGIN_CALL:
        if open_margin_call(facility) is None and open_forced_sale(facility) is None:
            margin_call_issue(facility=facility, actor=actor)
            actions += 1
    elif now == MarginStatus.FORCED_SALE:
        if open_forced_sale(facility) is None:
            call = open_margin_call(facility) or margin_call_issue(facility=facility, actor=actor)
            forced_sale_request(
                facility=facility, trigger=ForcedSaleTrigger.THRESHOLD, margin_call=call, actor=actor
            )
            actions += 1
    elif now in BELOW_WARNING and before not in BELOW_WARNING:
        event_record(
            type="margin.restored",
            summary=f"{facility.reference} is back within limits at {format_percent(valuation.margin_ratio)}",
            payload=figures,
            client=facility.client,
            subject=facility,
            notify_staff=False,
        )
        actions += 1
    state.notified_status = now
    state.save()
    return actions


@transaction.atomic
def margin_call_cure_if_back_at_target(*, call: MarginCall, actor: Actor = SYSTEM) -> bool:
    """Cure an open call when its facility's ratio is at or below the policy's target again (after a
    top-up, a repayment or a market move)."""
    facility = lock_one(Facility, call.facility_id)
    call = lock_one(MarginCall, call.pk)
    if call.status not in OPEN_MARGIN_CALL_STATUSES:
        return False
    valuation = facility_valuation(facility)
    target = policy_for(facility).target
    if ratio_above(valuation.debt.total, valuation.margin_value, target):
        return False
    margin_call_transition(
        call=call,
        status=MarginCallStatus.CURED,
        actor=actor,
        reason=f"ratio {format_percent(valuation.margin_ratio)} is at or below the target of {format_percent(target)}",
    )
    return True


@transaction.atomic
def margin_call_escalate(*, call: MarginCall, actor: Actor = SYSTEM) -> bool:
    """A call not met by its deadline is escalated and handed to a forced sale."""
    facility = lock_one(Facility, call.facility_id)
    call = lock_one(MarginCall, call.pk)
    if call.status != MarginCallStatus.ISSUED or call.deadline > timezone.now():
        return False
    if margin_call_cure_if_back_at_target(call=call, actor=actor):
        return False
    call = margin_call_transition(
        call=call,
        status=MarginCallStatus.ESCALATED,
        actor=actor,
        reason=f"not met by {call.deadline:%Y-%m-%d %H:%M} HKT; still due {hkd(call.repayment_due.amount)}",
    )
    forced_sale_request(facility=facility, trigger=ForcedSaleTrigger.DEADLINE, margin_call=call, actor=actor)
    return True


def _each(label: str, items, step) -> int:
    """Run ``step`` for each item in its own transaction; one failure is logged and does not stop the rest
    (the next run tries it again)."""
    done = 0
    for item in items:
        try:
            done += int(step(item))
        except Exception:
            logger.exception("margin ladder: %s %s failed; it will be retried on the next run", label, item)
    return done


def ladder_run(*, actor: Actor = SYSTEM) -> int:
    due = MarginState.objects.exclude(status=F("notified_status")).order_by("facility_id")
    actions = _each(
        "facility",
        list(due.values_list("facility_id", flat=True)),
        lambda pk: ladder_step(facility_id=pk, actor=actor),
    )
    open_calls = MarginCall.objects.filter(status__in=OPEN_MARGIN_CALL_STATUSES).order_by("pk")
    actions += _each(
        "cure of call",
        list(open_calls),
        lambda call: margin_call_cure_if_back_at_target(call=call, actor=actor),
    )
    return actions


def margin_calls_escalate_due(*, actor: Actor = SYSTEM) -> int:
    due = MarginCall.objects.filter(status=MarginCallStatus.ISSUED, deadline__lte=timezone.now()).order_by(
        "deadline"
    )
    return _each("escalation of call", list(due), lambda call: margin_call_escalate(call=call, actor=actor))
