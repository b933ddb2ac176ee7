"""The margin-call ladder: act once on every facility whose margin status moved (warn, issue a call, request
a sale, tell of a recovery), in batches; then cure calls back at target. How and why: docs/monitoring.md."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.audit import SYSTEM, Actor
from core.calendar import cure_deadline
from core.db import bigint_array, fetchone_named, id_in
from core.locks import lock_one, lock_rows
from core.money import format_hkd
from core.sql import sql_file
from core.tasks import task_queue_on_commit
from financing.calculations import MarginFigures
from financing.enums import (
    OPEN_FORCED_SALE_STATUSES,
    OPEN_MARGIN_CALL_STATUSES,
    FacilityStatus,
    ForcedSaleTrigger,
    MarginCallStatus,
    MarginStatus,
)
from financing.locks import sweep_lock
from financing.margin_calls.batch import (
    LadderBatch,
    ladder_parameters,
    ladder_statement,
    ladder_statement_run,
)
from financing.margin_calls.records import CallValues, FacilityRef
from financing.margin_calls.services import forced_sale_request, margin_call_reassess, margin_call_transition
from financing.models import Facility, ForcedSale, MarginCall, MarginPolicy, MarginState
from financing.monitoring.sweep import posted_since, previous_sweep_start, valuations_of
from financing.selectors import cash_top_ups_to_target, default_policy, thresholds_of
from financing.top_ups.automatic import (
    automatic_top_ups_after_ladder,
    automatic_top_ups_for_new_free_holdings,
)
from ledger.models import Leg
from notifications.services import ClientRef

logger = logging.getLogger(__name__)

BELOW_WARNING = (MarginStatus.NO_DEBT, MarginStatus.OK)
CALLED_STATUSES = (MarginStatus.MARGIN_CALL, MarginStatus.FORCED_SALE)
BATCH_SIZE = 5000


# What ``ladder_apply_in_python`` reads of each facility in a batch, locking the facility and then its margin
# state (in id order, like every other writer): the facility and its client (enough for calls, sales and the
# events' wording), whether it has an open margin call or forced sale, and the margin state.
FACILITY_FIELDS = ["id", "reference", "client_id", "client__email", "policy_id", "status"]
STATE_FIELDS = ["market_value", "margin_value", "debt", "margin_ratio", "status", "notified_status", "valued_at",
                "status_since"]  # fmt: skip


@dataclass(frozen=True)
class Due:
    """A facility the ladder is to act on, as read (and locked) for a batch."""

    facility: FacilityRef
    figures: MarginFigures  # the margin state's
    notified_status: str
    valued_at: datetime.datetime
    status_since: datetime.datetime
    open_call_id: int | None
    has_open_sale: bool


def _read_batch(facility_ids: list[int]) -> dict[int, Due]:
    """Two statements for a whole batch, whatever its size, returning plain values (no model instances:
    a batch is thousands of facilities)."""
    open_call = MarginCall.objects.filter(facility=OuterRef("pk"), status__in=OPEN_MARGIN_CALL_STATUSES)
    open_sale = ForcedSale.objects.filter(facility=OuterRef("pk"), status__in=OPEN_FORCED_SALE_STATUSES)
    rows = lock_rows(
        Facility.objects.filter(id_in("pk", facility_ids))
        .annotate(
            open_call_id=Subquery(open_call.order_by("pk").values("pk")[:1]), has_open_sale=Exists(open_sale)
        )
        .values_list(*FACILITY_FIELDS, "open_call_id", "has_open_sale", named=True)
    )
    states = {
        state.facility_id: state
        for state in lock_rows(
            MarginState.objects.filter(id_in("facility_id", [row.id for row in rows])).values_list(
                "facility_id", *STATE_FIELDS, named=True
            )
        )
    }
    due = {}
    for row in rows:
        state = states.get(row.id)
        if state is None:  # never valued: nothing for the ladder yet
            continue
        due[row.id] = Due(
            facility=FacilityRef(row.id, row.reference, ClientRef(row.client_id, row.client__email), row.policy_id,
                           row.status),
            figures=MarginFigures(market_value=state.market_value, margin_value=state.margin_value, debt=state.debt,
                            margin_ratio=state.margin_ratio, status=state.status),
            notified_status=state.notified_status,
            valued_at=state.valued_at,
            status_since=state.status_since,
            open_call_id=row.open_call_id,
            has_open_sale=row.has_open_sale,
        )  # fmt: skip
    return due


def _live_figures(
    facilities: dict[int, FacilityRef], valued_since: datetime.datetime
) -> dict[int, MarginFigures]:
    """MarginFigures valued again now for the facilities whose client's ledger accounts were posted to since their
    margin state was valued (a top-up or a repayment the sweep did not see). Everybody else's holdings and
    debt are those of the state: the ladder acts on the truth without valuing the whole batch twice."""
    clients = {f.client.pk for f in facilities.values()}
    touched = set(
        Leg.objects.filter(
            id_in("account__client_id", clients), transaction__posted_at__gte=posted_since(valued_since)
        ).values_list("account__client_id", flat=True)
    )
    if not touched:
        return {}
    rows = valuations_of(sorted(touched))
    return {pk: row.figures for pk, row in rows.items()}


def ladder_apply(*, facility_ids: list[int], actor: Actor = SYSTEM) -> int:
    """Act on facilities whose status moved since the ladder last acted (a batch, in its own transaction):
    on PostgreSQL one statement reads, decides and writes it all (``ladder_apply_in_sql``); elsewhere
    ``ladder_apply_in_python`` does it here. The two act alike (the tests run both). Returns the actions
    taken.

    A batch first takes the sweeps' lock shared (``financing.locks.sweep_lock``): it waits for a sweep under
    way to commit, and a sweep waits for the batches under way. The two write the same margin states (the
    sweep its figures, the batch what it acted on and the figures it valued again), each in its own order;
    without the lock a sweep's update and a batch's could each wait for a row the other held, and PostgreSQL
    would abort one of them as a deadlock. Now neither waits for a row the other holds: the batch acts on
    what the sweep stored, and a crossing the sweep stores after it is still due for the next run."""
    if connection.vendor == "postgresql":
        return ladder_apply_in_sql(facility_ids=facility_ids, actor=actor)
    return ladder_apply_in_python(facility_ids=facility_ids, actor=actor)


def _lock_and_value_again(facility_ids: list[int], now: datetime.datetime) -> None:
    """Lock the batch's facilities (``lock``) and value again those whose client was posted to since their
    margin state was valued (a top-up or a repayment the sweep did not see), writing the new figures on the
    state: the ladder acts on the truth. Only postings change holdings and debt, so every other state is the
    truth already."""
    with connection.cursor() as cursor:
        cursor.execute(sql_file(__file__, "ladder.sql", "lock"), {"facilities": bigint_array(facility_ids)})
        locked = fetchone_named(cursor)  # as arrays: thousands of rows, one value each
    facilities, clients = locked["facilities"], locked["clients"]
    if not facilities:
        return
    touched = set(
        Leg.objects.filter(
            id_in("account__client_id", set(clients)),
            transaction__posted_at__gte=posted_since(locked["valued_since"]),
        ).values_list("account__client_id", flat=True)
    )
    if not touched:
        return
    # Their states are locked before they are valued, in id order: a sweep storing newer figures meanwhile
    # either finishes first (and this valuation, from the ledger and prices as they now are, follows it) or
    # waits for the ladder; the ladder never writes over figures newer than its own.
    posted = {
        facility_id
        for facility_id, client_id in zip(facilities, clients, strict=True)
        if client_id in touched
    }
    lock_rows(MarginState.objects.filter(id_in("facility_id", sorted(posted))).values_list("facility_id"))
    rows = [row for pk, row in valuations_of(sorted(touched)).items() if pk in posted]
    with connection.cursor() as cursor:
        cursor.executemany(
            sql_file(__file__, "ladder.sql", "states_valued_again"),
            [{**row._asdict(), "now": now} for row in rows],
        )


@transaction.atomic
def ladder_apply_in_sql(*, facility_ids: list[int], actor: Actor = SYSTEM) -> int:
    """``ladder_apply`` decided and written by one statement (``decided_inputs``) once the batch's rows are
    locked and the states of the clients posted to since are valued again; every state of the batch is marked
    as acted on. The forced sales requested are started after commit."""
    now = timezone.now()
    sweep_lock(shared=True)  # no sweep under way: see ``ladder_apply``
    _lock_and_value_again(facility_ids, now)
    # The calls this batch issues (``new_call`` of ``decided_inputs``): an open facility reaching a call or a
    # sale with no call or sale open. Only their cash top-ups are stated; an open call keeps its own.
    open_call = MarginCall.objects.filter(
        facility=OuterRef("facility_id"), status__in=OPEN_MARGIN_CALL_STATUSES
    )
    open_sale = ForcedSale.objects.filter(
        facility=OuterRef("facility_id"), status__in=OPEN_FORCED_SALE_STATUSES
    )
    to_call = (
        MarginState.objects.filter(id_in("facility_id", facility_ids), status__in=CALLED_STATUSES)
        .exclude(notified_status=F("status"))
        .exclude(facility__status=FacilityStatus.CLOSED)
        .exclude(Exists(open_call))
        .exclude(Exists(open_sale))
    )
    exact = cash_top_ups_to_target(list(to_call.values_list("facility_id", flat=True)))
    deadlines = {}  # per cure time and business days, in UTC as stored
    policies = []
    for pk, days, at in MarginPolicy.objects.values_list("pk", "cure_business_days", "cure_time"):
        if (days, at) not in deadlines:
            deadlines[days, at] = cure_deadline(now, days, at).astimezone(datetime.UTC)
        policies.append((pk, deadlines[days, at]))
    written = ladder_statement_run(
        ladder_statement(sql_file(__file__, "ladder.sql", "decided_inputs")),
        {
            **ladder_parameters(actor, now),
            "facilities": bigint_array(facility_ids),
            "default_policy": default_policy().pk,
            "deadline_policies": [pk for pk, _ in policies],
            "deadlines": [deadline for _, deadline in policies],
            "open_call_statuses": list(OPEN_MARGIN_CALL_STATUSES),
            "open_sale_statuses": list(OPEN_FORCED_SALE_STATUSES),
            "threshold": ForcedSaleTrigger.THRESHOLD.value,
            "threshold_words": ForcedSaleTrigger.THRESHOLD.label.lower(),
            "exact_facilities": bigint_array(list(exact)),
            "exact_top_ups": "{" + ",".join(str(amount) for amount in exact.values()) + "}",
        },
    )
    if written.sale_ids:
        task_queue_on_commit("financing.forced_sales_start", written.sale_ids)  # one message for the batch
    # --- automatic top-up hook: facilities this batch called or warned, whose client has an active
    # standing instruction, get their top-up now, each in its own savepoint (financing/top_ups.py) ---
    return written.actions + automatic_top_ups_after_ladder(
        called=written.called, warned=written.warned, actor=actor
    )


@transaction.atomic
def ladder_apply_in_python(*, facility_ids: list[int], actor: Actor = SYSTEM) -> int:
    """``ladder_apply`` with the batch read and decided here (the SQLite demo; the tests run both)."""
    sweep_lock(shared=True)  # no sweep under way: see ``ladder_apply``
    due = _read_batch(facility_ids)
    if not due:
        return 0
    facilities = {pk: d.facility for pk, d in due.items()}
    live = _live_figures(facilities, min(d.valued_at for d in due.values()))
    open_calls = CallValues.loaded(  # open calls a forced sale may take over (locked with their facilities)
        [
            d.open_call_id
            for pk, d in due.items()
            if d.open_call_id and (live.get(pk) or d.figures).status == MarginStatus.FORCED_SALE
        ],
        facilities,
    )
    default = default_policy()
    policies = {
        p.pk: p
        for p in MarginPolicy.objects.filter(pk__in={f.policy_id for f in facilities.values() if f.policy_id})
    }
    exact = cash_top_ups_to_target(  # what the calls to be issued state where a concentration cut binds
        [
            pk
            for pk, d in due.items()
            if not d.open_call_id
            and not d.has_open_sale
            and d.facility.status != FacilityStatus.CLOSED
            and (live.get(pk) or d.figures).status in CALLED_STATUSES
        ]
    )
    batch = LadderBatch(actor=actor)
    now = batch.now
    revalued, acted = [], []
    for facility_id in sorted(due):
        d = due[facility_id]
        facility, before = d.facility, d.notified_status
        if facility.status == FacilityStatus.CLOSED:  # closed since the sweep: nothing to act on
            acted.append(facility_id)
            continue
        figures = live.get(facility_id) or d.figures
        policy = policies.get(facility.policy_id, default)
        current = figures.status
        if current == MarginStatus.WARNING and before in BELOW_WARNING:
            batch.warn(facility, figures, thresholds_of(policy))
        elif current == MarginStatus.MARGIN_CALL:
            if not d.open_call_id and not d.has_open_sale:
                batch.issue_call(facility, figures, policy, cash_top_up=exact.get(facility_id))
        elif current == MarginStatus.FORCED_SALE:
            if not d.has_open_sale:
                call = open_calls.get(facility_id) or batch.issue_call(
                    facility, figures, policy, cash_top_up=exact.get(facility_id)
                )
                batch.request_sale(facility, figures, ForcedSaleTrigger.THRESHOLD, call)
        elif current in BELOW_WARNING and before not in BELOW_WARNING:
            batch.restored(facility, figures)
        if facility_id in live:
            status_since = now if d.figures.status != current else d.status_since
            revalued.append(
                {"market_value": figures.market_value, "margin_value": figures.margin_value, "debt": figures.debt,
                 "margin_ratio": figures.margin_ratio, "status": current, "now": now, "status_since": status_since,
                 "facility_id": facility_id}
            )  # fmt: skip
        else:
            acted.append(facility_id)
    actions = batch.write()
    # The state's own figures were acted on: only what the ladder has acted on changes.
    MarginState.objects.filter(id_in("facility_id", acted)).update(notified_status=F("status"))
    with connection.cursor() as cursor:
        # Valued again: the new figures, one prepared statement pipelined (far cheaper than bulk_update).
        cursor.executemany(sql_file(__file__, "ladder.sql", "states_acted_on_valued_again"), revalued)
    # --- automatic top-up hook: facilities this batch called or warned, whose client has an active
    # standing instruction, get their top-up now, each in its own savepoint (financing/top_ups.py) ---
    called = {
        c.facility.pk: c.facility.client.pk for c in batch.new_calls if c.status == MarginCallStatus.ISSUED
    }
    warned = {facility.pk: facility.client.pk for facility in batch.warned}
    actions += automatic_top_ups_after_ladder(called=called, warned=warned, actor=actor)
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
    on a live valuation before it is cured). Each call's margin state is read by its key, with the policy it
    holds (the facility's): a join would read every state, for the few thousand calls open at most."""
    at_target = (
        MarginState.objects.filter(facility_id=OuterRef("facility_id"))
        .annotate(
            at_target=ExpressionWrapper(
                Q(
                    debt__lte=Coalesce(F("policy__target"), Value(default_policy().target))
                    * F("margin_value")
                ),
                output_field=BooleanField(),
            )  # LEFT JOIN: the policy may be empty
        )
        .values("at_target")[:1]
    )
    calls = MarginCall.objects.filter(status__in=OPEN_MARGIN_CALL_STATUSES).alias(
        at_target=Subquery(at_target)
    )
    return list(calls.filter(at_target=True).order_by("pk"))


def ladder_run(*, actor: Actor = SYSTEM) -> int:
    # Receipts count from a little before the last finished sweep started (when the ladder runs after a sweep,
    # the one before it: this run's is not finished yet).
    since = posted_since(previous_sweep_start())
    due = list(
        MarginState.objects.exclude(status=F("notified_status"))
        .order_by("facility_id")
        .values_list("facility_id", flat=True)
    )
    batches = [due[i : i + BATCH_SIZE] for i in range(0, len(due), BATCH_SIZE)]
    actions = _each("batch of facilities", batches, lambda ids: ladder_apply(facility_ids=ids, actor=actor))
    # Free holdings received since the previous sweep: a standing instruction uses them for a call already open.
    actions += automatic_top_ups_for_new_free_holdings(since=since, actor=actor)
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
