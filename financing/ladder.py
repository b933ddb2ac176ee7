"""The margin-call ladder: what the platform does when a facility's margin status changes.

| status reached | action |
|---|---|
| warning (from below) | the client and staff are told |
| margin call | a margin call is issued: what cures it, and the deadline |
| forced sale | a forced sale is requested at once (the call, issued if need be, is handed to it) |
| back within limits | the client is told |

The sweep stores each facility's status in ``MarginState``; ``notified_status`` says what the ladder has
acted on. ``ladder_run`` handles every facility where the two differ, in batches: each batch locks its
facilities (in id order, like every other writer), re-values them live in one statement (so it acts on the
truth, not on a valuation a top-up has overtaken), decides, and writes calls, sales, events, outbox
messages and audit events in a few statements. Then every open call whose facility is back at target is
cured, and every issued call past its deadline is escalated to a forced sale. All of it is idempotent:
run it twice, the second run does nothing."""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.db.models import DecimalField, ExpressionWrapper, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.audit import SYSTEM, Actor
from core.locks import lock_one, lock_rows
from core.money import format_hkd, format_percent
from financing.enums import (
    OPEN_FORCED_SALE_STATUSES,
    OPEN_MARGIN_CALL_STATUSES,
    ForcedSaleTrigger,
    MarginCallStatus,
    MarginStatus,
)
from financing.margin_calls import (
    Figures,
    LadderBatch,
    forced_sale_request,
    margin_call_reassess,
    margin_call_transition,
)
from financing.models import Facility, ForcedSale, MarginCall, MarginPolicy, MarginState
from financing.selectors import default_policy, thresholds_of
from financing.sweep import valuations_of
from financing.top_ups import auto_top_ups_after_ladder  # the automatic top-up hook in ladder_apply
from notifications.services import EventSpec

logger = logging.getLogger(__name__)

BELOW_WARNING = (MarginStatus.NO_DEBT, MarginStatus.OK)
BATCH_SIZE = 2000


def _payload(facility: Facility, figures: Figures) -> dict:
    return {
        "facility": facility.reference,
        "margin_ratio": figures.margin_ratio,
        "margin_value": figures.margin_value,
        "debt": figures.debt,
        "status": figures.status,
    }


@transaction.atomic
def ladder_apply(*, facility_ids: list[int], actor: Actor = SYSTEM) -> int:
    """Act on facilities whose status moved since the ladder last acted. Returns the actions taken."""
    facilities = {
        f.pk: f for f in lock_rows(Facility.objects.filter(pk__in=facility_ids).select_related("client"))
    }
    states = {s.facility_id: s for s in lock_rows(MarginState.objects.filter(facility_id__in=facilities))}
    live = valuations_of(sorted({f.client_id for f in facilities.values()}))
    open_calls = {
        c.facility_id: c
        for c in MarginCall.objects.filter(
            facility_id__in=facilities, status__in=OPEN_MARGIN_CALL_STATUSES
        ).select_related("facility__client")
    }
    open_sales = set(
        ForcedSale.objects.filter(
            facility_id__in=facilities, status__in=OPEN_FORCED_SALE_STATUSES
        ).values_list("facility_id", flat=True)
    )
    default = default_policy()
    policies = {
        p.pk: p
        for p in MarginPolicy.objects.filter(pk__in={f.policy_id for f in facilities.values() if f.policy_id})
    }
    batch = LadderBatch(actor=actor)
    now = batch.now
    for facility_id in sorted(states):
        facility, state = facilities[facility_id], states[facility_id]
        row = live.get(facility_id)
        if row is None:  # closed since the sweep
            continue
        figures = Figures(*row[1:])
        policy = policies.get(facility.policy_id, default)
        before, current = state.notified_status, figures.status
        if current == MarginStatus.WARNING and before in BELOW_WARNING:
            thresholds = thresholds_of(policy)
            batch.events.append(
                EventSpec(
                    type="margin.warning",
                    summary=(
                        f"{facility.reference} is at {format_percent(figures.margin_ratio)}, at or above the warning "
                        f"level of {format_percent(thresholds.warning)}: a margin call follows above "
                        f"{format_percent(thresholds.margin_call)}"
                    ),
                    payload=_payload(facility, figures),
                    client=facility.client,
                    subject=facility,
                )
            )
        elif current == MarginStatus.MARGIN_CALL:
            if facility_id not in open_calls and facility_id not in open_sales:
                batch.issue_call(facility, figures, policy)
        elif current == MarginStatus.FORCED_SALE:
            if facility_id not in open_sales:
                call = open_calls.get(facility_id) or batch.issue_call(facility, figures, policy)
                batch.request_sale(facility, figures, ForcedSaleTrigger.THRESHOLD, call)
        elif current in BELOW_WARNING and before not in BELOW_WARNING:
            batch.events.append(
                EventSpec(
                    type="margin.restored",
                    summary=f"{facility.reference} is back within limits at {format_percent(figures.margin_ratio)}",
                    payload=_payload(facility, figures),
                    client=facility.client,
                    subject=facility,
                    notify_staff=False,
                )
            )
        if (state.status, state.margin_ratio) != (current, figures.margin_ratio):
            state.status_since = now if state.status != current else state.status_since
        state.market_value, state.margin_value, state.debt = (
            figures.market_value,
            figures.margin_value,
            figures.debt,
        )
        state.margin_ratio, state.status, state.notified_status, state.valued_at = (
            figures.margin_ratio,
            current,
            current,
            now,
        )
    actions = batch.write()
    with (
        connection.cursor() as cursor
    ):  # one prepared statement, pipelined: far cheaper than bulk_update's CASEs
        cursor.executemany(
            "UPDATE financing_marginstate SET market_value = %s, margin_value = %s, debt = %s, margin_ratio = %s, "
            "status = %s, notified_status = %s, valued_at = %s, status_since = %s WHERE facility_id = %s",
            [
                (
                    s.market_value,
                    s.margin_value,
                    s.debt,
                    s.margin_ratio,
                    s.status,
                    s.notified_status,
                    s.valued_at,
                    s.status_since,
                    s.facility_id,
                )
                for s in states.values()
            ],
        )
    # --- automatic top-up hook: facilities this batch called or warned, whose client has an active
    # standing instruction, get their top-up now, each in its own savepoint (financing/top_ups.py) ---
    actions += auto_top_ups_after_ladder(batch=batch, actor=actor)
    # --- end of automatic top-up hook ---
    return actions


def ladder_step(*, facility_id: int, actor: Actor = SYSTEM) -> int:
    return ladder_apply(facility_ids=[facility_id], actor=actor)


@transaction.atomic
def margin_call_escalate(*, call: MarginCall, actor: Actor = SYSTEM) -> bool:
    """A call not met by its deadline is escalated and handed to a forced sale."""
    facility = lock_one(Facility, call.facility_id)
    call = lock_one(MarginCall, call.pk)
    if call.status != MarginCallStatus.ISSUED or call.deadline > timezone.now():
        return False
    if margin_call_reassess(call=call, actor=actor, cause="the deadline") == "cured":
        return False
    call = margin_call_transition(
        call=call,
        status=MarginCallStatus.ESCALATED,
        actor=actor,
        reason=f"not met by its deadline; still due {format_hkd(call.repayment_due.amount)}",
    )
    forced_sale_request(facility=facility, trigger=ForcedSaleTrigger.DEADLINE, margin_call=call, actor=actor)
    return True


def _each(label: str, items, step) -> int:
    """Run ``step`` for each item (each in its own transaction); one failure is logged and does not stop
    the rest — the next run tries it again."""
    done = 0
    for item in items:
        try:
            done += int(step(item))
        except Exception:
            logger.exception("margin ladder: %s %s failed; it will be retried on the next run", label, item)
    return done


def cure_candidates() -> list[MarginCall]:
    """Open calls whose facility the last valuation puts at or below its policy's target (each is confirmed
    on a live valuation before it is cured)."""
    calls = MarginCall.objects.filter(status__in=OPEN_MARGIN_CALL_STATUSES).annotate(
        target=Coalesce(
            F("facility__policy__target"), Value(default_policy().target)
        ),  # LEFT JOIN: policy may be empty
        state_debt=F("facility__margin_state__debt"),
        state_margin_value=F("facility__margin_state__margin_value"),
    )
    at_target = ExpressionWrapper(F("target") * F("state_margin_value"), output_field=DecimalField())
    return list(calls.filter(state_debt__lte=at_target).order_by("pk"))


def ladder_run(*, actor: Actor = SYSTEM) -> int:
    due = list(
        MarginState.objects.exclude(status=F("notified_status"))
        .order_by("facility_id")
        .values_list("facility_id", flat=True)
    )
    batches = [due[i : i + BATCH_SIZE] for i in range(0, len(due), BATCH_SIZE)]
    actions = _each("batch of facilities", batches, lambda ids: ladder_apply(facility_ids=ids, actor=actor))
    actions += _each(
        "cure of call",
        cure_candidates(),
        lambda call: margin_call_reassess(call=call, actor=actor, cause="a market move") == "cured",
    )
    return actions


def margin_calls_escalate_due(*, actor: Actor = SYSTEM) -> int:
    due = MarginCall.objects.filter(status=MarginCallStatus.ISSUED, deadline__lte=timezone.now()).order_by(
        "deadline"
    )
    return _each("escalation of call", list(due), lambda call: margin_call_escalate(call=call, actor=actor))
