"""A margin-call ladder batch written by PostgreSQL: one statement words and writes everything a
``LadderBatch`` collected — the calls issued, the sales requested, the calls handed to a sale, the notices
(warnings and recoveries), their events and outbox messages, and the audit events.

After a crash the ladder acts on thousands of facilities at once. Building each record in Python (a payload
dict, its JSON, an audit row, a COPY row) cost more than the database's writing of it; here Python only
hands over the batch's values as a few arrays, and the database words the events and audit records with
``format_percent``, ``format_hkd`` and ``isoformat_utc`` (migration ``0015_wording_functions``), the SQL twins
of ``core.money``'s and ``datetime.isoformat``. The words are those of ``financing.margin_calls``
(``margin_call_issued_records``, ``forced_sale_requested_records``, ``margin_call_moved_records`` and
``notice_event``), which ``LadderBatch.write_in_python`` uses elsewhere: the tests write the same batches
both ways and compare every record."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import Actor, actor_label, actor_user
from core.calendar import HONG_KONG, cure_deadline
from core.db import bigint_array, id_in, insert_defaults, reserve_pks
from core.locks import lock_rows
from core.tasks import task_queue_on_commit
from financing.enums import (
    OPEN_FORCED_SALE_STATUSES,
    OPEN_MARGIN_CALL_STATUSES,
    ForcedSaleStatus,
    ForcedSaleTrigger,
    MarginCallStatus,
)
from financing.margin_calls import (
    CALL_EVENT_WORDS,
    CallValues,
    LadderBatch,
    handover_reason,
)
from financing.models import Facility, ForcedSale, MarginCall, MarginPolicy, MarginState
from financing.selectors import default_policy
from financing.sweep import posted_since, valuations_of
from ledger.models import Leg
from notifications.services import (
    BATCH_DELIVERY_THRESHOLD,
    DIGEST_EXAMPLES,
    MESSAGES_FROM_EVENTS_SQL,
    events_record,
    fan_out_parameters,
    messages_delivery_queue,
    staff_digest,
)

GIVEN_CALL_COLUMNS = ["id", "facility_id", "status", "ratio_at_issue", "debt_at_issue", "margin_value_at_issue",
                      "repayment_due", "top_up_due", "deadline", "closed_at", "close_reason"]  # fmt: skip
GIVEN_SALE_COLUMNS = ["id", "facility_id", "margin_call_id", "trigger", "ratio_at_request"]

# The batch as relations: ``notice``, ``call`` (each call issued or handed over, once: a call issued and
# handed over in the same batch is both) and ``sale``, each numbered in the batch's order. Then the records:
# ``event`` (every event with its words, payload and who is told, in the order ``write_in_python`` records
# them), ``audit``; then the writes.
GIVEN_INPUTS = """
notice AS MATERIALIZED (
    SELECT * FROM unnest(%(n_facility)s::bigint[], %(n_reference)s::text[], %(n_client)s::bigint[],
                         %(n_email)s::text[], %(n_ratio)s::numeric[], %(n_margin_value)s::numeric[],
                         %(n_debt)s::numeric[], %(n_status)s::text[], %(n_warning)s::numeric[],
                         %(n_margin_call)s::numeric[])
        WITH ORDINALITY AS n(facility_id, reference, client_id, email, ratio, margin_value, debt, status, warning,
                             margin_call, ord)
),
call AS MATERIALIZED (
    SELECT * FROM unnest(%(c_id)s::bigint[], %(c_facility)s::bigint[], %(c_reference)s::text[],
                         %(c_client)s::bigint[], %(c_email)s::text[], %(c_new)s::boolean[], %(c_before)s::text[],
                         %(c_ratio)s::numeric[], %(c_debt)s::numeric[], %(c_margin_value)s::numeric[],
                         %(c_repayment)s::numeric[], %(c_top_up)s::numeric[], %(c_deadline)s::timestamptz[],
                         %(c_sale)s::bigint[], %(c_reason)s::text[], %(c_handed_ord)s::integer[])
        WITH ORDINALITY AS c(id, facility_id, reference, client_id, email, new, before, ratio, debt, margin_value,
                             repayment, top_up, deadline, sale_id, reason, handed_ord, ord)
),
sale AS MATERIALIZED (
    SELECT * FROM unnest(%(s_id)s::bigint[], %(s_facility)s::bigint[], %(s_reference)s::text[],
                         %(s_client)s::bigint[], %(s_email)s::text[], %(s_trigger)s::text[],
                         %(s_trigger_words)s::text[], %(s_ratio)s::numeric[], %(s_call)s::bigint[])
        WITH ORDINALITY AS s(id, facility_id, reference, client_id, email, trigger, trigger_words, ratio, call_id, ord)
)
"""

# The inputs decided here, for a batch of facilities whose margin status moved since the ladder last acted
# (``ladder_batch_apply``; their rows are locked by then): each facility's state, policy, open call and
# whether a sale is open (``due``); what the ladder does about it (``decided``: the table in
# ``financing.ladder``); the keys of the calls and sales it makes, in facility order; then the same
# relations as ``GIVEN_INPUTS``. Every state of the batch is marked as acted on (``acknowledged``): with the
# status it was acted on at.
DECIDED_INPUTS = """
policy AS MATERIALIZED (
    SELECT mp.id, mp.warning, mp.margin_call, mp.target, d.deadline FROM financing_marginpolicy mp
      JOIN unnest(%(deadline_policies)s::bigint[], %(deadlines)s::timestamptz[]) AS d(policy_id, deadline)
        ON d.policy_id = mp.id
),
due AS MATERIALIZED (
    SELECT ms.facility_id, f.reference, f.client_id, c.email, f.status <> 'closed' AS open,
           ms.market_value, ms.margin_value, ms.debt, ms.margin_ratio AS ratio, ms.status, ms.notified_status,
           mp.warning, mp.margin_call, mp.target, mp.deadline,
           oc.id AS call_id, oc.status AS call_status, oc.ratio_at_issue AS call_ratio, oc.debt_at_issue AS call_debt,
           oc.margin_value_at_issue AS call_margin_value, oc.repayment_due AS call_repayment,
           oc.top_up_due AS call_top_up, oc.deadline AS call_deadline,
           EXISTS (SELECT FROM financing_forcedsale s
                    WHERE s.facility_id = f.id AND s.status = ANY(%(open_sale_statuses)s::text[])) AS sale_open
      FROM financing_marginstate ms
      JOIN financing_facility f ON f.id = ms.facility_id
      JOIN accounts_client c ON c.id = f.client_id
      JOIN policy mp ON mp.id = COALESCE(ms.policy_id, %(default_policy)s)
      LEFT JOIN LATERAL (
          SELECT m.* FROM financing_margincall m
           WHERE m.facility_id = f.id AND m.status = ANY(%(open_call_statuses)s::text[])
           ORDER BY m.id LIMIT 1
      ) oc ON true
     WHERE ms.facility_id = ANY(%(facilities)s::bigint[]) AND ms.status <> ms.notified_status
),
decided AS (
    SELECT d.*,
           d.open AND d.status = 'warning' AND d.notified_status IN ('no_debt', 'ok') AS warn,
           d.open AND d.status IN ('no_debt', 'ok') AND d.notified_status NOT IN ('no_debt', 'ok') AS restored,
           d.open AND NOT d.sale_open AND d.call_id IS NULL AND d.status IN ('margin_call', 'forced_sale') AS new_call,
           d.open AND NOT d.sale_open AND d.status = 'forced_sale' AS new_sale
      FROM due d
),
keyed AS MATERIALIZED (
    SELECT d.*,
           CASE WHEN d.new_call THEN nextval(pg_get_serial_sequence('financing_margincall', 'id')) END AS new_call_id,
           CASE WHEN d.new_sale THEN nextval(pg_get_serial_sequence('financing_forcedsale', 'id')) END AS new_sale_id,
           cure_repayment(d.debt, d.margin_value, d.target) AS repayment,
           cure_top_up(d.debt, d.margin_value, d.target) AS top_up
      FROM (SELECT * FROM decided ORDER BY facility_id) d
),
notice AS MATERIALIZED (
    SELECT k.facility_id, k.reference, k.client_id, k.email, k.ratio, k.margin_value, k.debt, k.status,
           CASE WHEN k.warn THEN k.warning END AS warning, CASE WHEN k.warn THEN k.margin_call END AS margin_call,
           row_number() OVER (ORDER BY k.facility_id) AS ord
      FROM keyed k WHERE k.warn OR k.restored
),
sale AS MATERIALIZED (
    SELECT k.new_sale_id AS id, k.facility_id, k.reference, k.client_id, k.email, %(threshold)s AS trigger,
           %(threshold_words)s AS trigger_words, k.ratio, COALESCE(k.call_id, k.new_call_id) AS call_id,
           row_number() OVER (ORDER BY k.facility_id) AS ord
      FROM keyed k WHERE k.new_sale
),
call AS MATERIALIZED (
    SELECT k.new_call_id AS id, k.facility_id, k.reference, k.client_id, k.email, true AS new,
           %(issued)s::text AS before, k.ratio, k.debt, k.margin_value, k.repayment, k.top_up, k.deadline,
           k.new_sale_id AS sale_id, 'forced sale #' || k.new_sale_id AS reason, s.ord AS handed_ord,
           row_number() OVER (ORDER BY k.facility_id) AS ord
      FROM keyed k LEFT JOIN sale s ON s.facility_id = k.facility_id
     WHERE k.new_call
    UNION ALL
    SELECT k.call_id, k.facility_id, k.reference, k.client_id, k.email, false, k.call_status, k.call_ratio,
           k.call_debt, k.call_margin_value, k.call_repayment, k.call_top_up, k.call_deadline, k.new_sale_id,
           'forced sale #' || k.new_sale_id, s.ord, NULL
      FROM keyed k JOIN sale s ON s.facility_id = k.facility_id
     WHERE k.call_id IS NOT NULL
),
acknowledged AS (
    UPDATE financing_marginstate ms SET notified_status = d.status
      FROM due d WHERE ms.facility_id = d.facility_id
    RETURNING 1
)
"""

WRITES = """
-- margin_call_payload: the call as its events give it (with its status at the time of the event).
call_payload AS (
    SELECT c.*, jsonb_build_object(
               'margin_call', c.id, 'facility', c.reference, 'margin_ratio_at_issue', c.ratio::text,
               'debt_at_issue', c.debt::text, 'margin_value_at_issue', c.margin_value::text,
               'repayment_due', c.repayment::text, 'top_up_due', c.top_up::text,
               'deadline', isoformat_utc(c.deadline)) AS body
      FROM call c
),
event AS MATERIALIZED (
    SELECT uuid_v7() AS id, e.* FROM (
        SELECT 1 AS part, n.ord, CASE WHEN n.warning IS NULL THEN 'margin.restored' ELSE 'margin.warning' END AS type,
               n.client_id, n.email, %(facility_type)s AS subject_type, n.facility_id::text AS subject_id,
               CASE WHEN n.warning IS NULL
                    THEN n.reference || ' is back within limits at ' || format_percent(n.ratio)
                    ELSE n.reference || ' is at ' || format_percent(n.ratio) || ', at or above the warning level of '
                         || format_percent(n.warning) || ': a margin call follows above '
                         || format_percent(n.margin_call) END AS summary,
               jsonb_build_object('facility', n.reference, 'margin_ratio', n.ratio::text,
                                  'margin_value', n.margin_value::text, 'debt', n.debt::text, 'status', n.status)
                   AS payload,
               n.warning IS NOT NULL AS staff
          FROM notice n
        UNION ALL
        SELECT 2, c.ord, 'margin_call.issued', c.client_id, c.email, %(call_type)s, c.id::text,
               'Margin call on ' || c.reference || ': ratio ' || format_percent(c.ratio) || '; repay '
               || format_hkd(c.repayment) || ' or top up ' || format_hkd(c.top_up) || ' cash by '
               || to_char(c.deadline AT TIME ZONE %(zone)s, 'YYYY-MM-DD HH24:MI') || ' HKT',
               c.body || jsonb_build_object('status', %(issued)s), true
          FROM call_payload c WHERE c.new
        UNION ALL
        SELECT 3, s.ord, 'forced_sale.requested', s.client_id, s.email, %(sale_type)s, s.id::text,
               'Forced sale requested on ' || s.reference || ': ' || s.trigger_words || ' (ratio '
               || format_percent(s.ratio) || ')',
               jsonb_build_object('forced_sale', s.id, 'facility', s.reference, 'trigger', s.trigger,
                                  'margin_ratio', s.ratio::text, 'margin_call', s.call_id), true
          FROM sale s
        UNION ALL
        SELECT 4, c.handed_ord, 'margin_call.' || %(handed)s, c.client_id, c.email, %(call_type)s, c.id::text,
               'Margin call #' || c.id || ' on ' || c.reference || ' ' || %(handed_words)s || ' (' || c.reason || ')',
               c.body || jsonb_build_object('status', %(handed)s, 'reason', c.reason), true
          FROM call_payload c WHERE c.sale_id IS NOT NULL
    ) e
),
audit AS (
    SELECT 2 AS part, c.ord, 'margin_call.issued' AS action, %(call_content_type)s::integer AS target_type_id,
           c.id::text AS target_id, 'Margin call #' || c.id || ' on ' || c.reference || ' (' || %(issued_label)s || ')'
               AS target_repr,
           NULL::jsonb AS before,
           jsonb_build_object('ratio_at_issue', c.ratio::text,
                              'debt_at_issue', jsonb_build_object('amount', c.debt::text, 'currency', 'HKD'),
                              'repayment_due', jsonb_build_object('amount', c.repayment::text, 'currency', 'HKD'),
                              'top_up_due', jsonb_build_object('amount', c.top_up::text, 'currency', 'HKD'),
                              'deadline', isoformat_utc(c.deadline)) AS after
      FROM call c WHERE c.new
    UNION ALL
    SELECT 3, s.ord, 'forced_sale.requested', %(sale_content_type)s::integer, s.id::text,
           'Forced sale #' || s.id || ' on ' || s.reference || ' (' || %(planned_label)s || ')', NULL::jsonb,
           jsonb_build_object('trigger', s.trigger, 'margin_ratio', s.ratio::text, 'margin_call', s.call_id)
      FROM sale s
    UNION ALL
    SELECT 4, c.handed_ord, 'margin_call.' || %(handed)s, %(call_content_type)s::integer, c.id::text,
           'Margin call #' || c.id || ' on ' || c.reference || ' (' || %(handed_label)s || ')',
           jsonb_build_object('status', c.before), jsonb_build_object('status', %(handed)s, 'reason', c.reason)
      FROM call c WHERE c.sale_id IS NOT NULL
),
calls_inserted AS (
    INSERT INTO financing_margincall ({call_columns}{call_default_columns})
    SELECT c.id, c.facility_id, CASE WHEN c.sale_id IS NULL THEN %(issued)s ELSE %(handed)s END, c.ratio, c.debt,
           c.margin_value, c.repayment, c.top_up, c.deadline,
           CASE WHEN c.sale_id IS NULL THEN NULL ELSE %(now)s END, COALESCE(c.reason, ''){call_default_values}
      FROM call c WHERE c.new ORDER BY c.ord
    RETURNING 1
),
calls_handed_over AS (
    UPDATE financing_margincall m SET status = %(handed)s, closed_at = %(now)s, close_reason = c.reason
      FROM call c
     WHERE m.id = c.id AND NOT c.new AND c.sale_id IS NOT NULL
    RETURNING 1
),
sales_inserted AS (
    INSERT INTO financing_forcedsale ({sale_columns}{sale_default_columns})
    SELECT s.id, s.facility_id, s.call_id, s.trigger, s.ratio{sale_default_values} FROM sale s ORDER BY s.ord
    RETURNING 1
),
events_inserted AS (
    INSERT INTO notifications_event (id, type, occurred_at, client_id, subject_type, subject_id, summary, payload)
    SELECT e.id, e.type, %(now)s, e.client_id, e.subject_type, e.subject_id, left(e.summary, 300), e.payload
      FROM event e ORDER BY e.part, e.ord
    RETURNING 1
),
audits_inserted AS (
    INSERT INTO accounts_auditevent (created_at, actor_id, actor_label, action, target_type_id, target_id,
                                     target_repr, before, after)
    SELECT %(now)s, %(actor_id)s::bigint, %(actor_label)s, a.action, a.target_type_id, a.target_id,
           left(a.target_repr, 200), a.before, a.after
      FROM audit a ORDER BY a.part, a.ord
    RETURNING 1
),
-- Staff are told of each alert, or (more than ``STAFF_ALERT_DIGEST_ABOVE``) of them all in one digest.
staff_told AS (SELECT COUNT(*) <= %(digest_above)s AS each FROM event WHERE staff),
fan_out AS (
    SELECT e.id, e.type, COALESCE(e.email, '') AS client_email, e.staff AND (SELECT each FROM staff_told) AS staff,
           true AS webhooks
      FROM event e
),
messages AS ({messages} RETURNING id)
SELECT (SELECT COUNT(*) FROM call WHERE new) + (SELECT COUNT(*) FROM sale) + (SELECT COUNT(*) FROM notice),
       (SELECT CASE WHEN COUNT(*) <= %(few_messages)s THEN array_agg(id ORDER BY id) END FROM messages),
       (SELECT COUNT(*) FROM messages),
       (SELECT each FROM staff_told),
       ARRAY(SELECT type FROM event WHERE staff),
       ARRAY(SELECT summary FROM event WHERE staff ORDER BY part, ord LIMIT %(digest_examples)s),
       ARRAY(SELECT id FROM sale ORDER BY ord),
       ARRAY(SELECT ARRAY[facility_id, client_id] FROM call WHERE new AND sale_id IS NULL),
       ARRAY(SELECT ARRAY[facility_id, client_id] FROM notice WHERE warning IS NOT NULL)
"""


def _ladder_sql(inputs: str) -> tuple[str, dict[str, object]]:
    """The statement on ``inputs`` (``GIVEN_INPUTS`` or ``DECIDED_INPUTS``), with the columns each model's
    defaults fill (``insert_defaults``) and their values."""
    calls = insert_defaults(MarginCall, GIVEN_CALL_COLUMNS, prefix="call_default")
    sales = insert_defaults(ForcedSale, GIVEN_SALE_COLUMNS, prefix="sale_default")
    sql = ("WITH" + inputs + "," + WRITES).format(
        call_columns=", ".join(GIVEN_CALL_COLUMNS),
        call_default_columns=calls.columns,
        call_default_values=calls.values,
        sale_columns=", ".join(GIVEN_SALE_COLUMNS),
        sale_default_columns=sales.columns,
        sale_default_values=sales.values,
        messages=MESSAGES_FROM_EVENTS_SQL.format(events="fan_out"),
    )
    return sql, {**calls.params, **sales.params}


EVENT_TYPES = ["margin.warning", "margin.restored", "margin_call.issued", "forced_sale.requested",
               f"margin_call.{MarginCallStatus.FORCED_SALE}"]  # fmt: skip


def _writes_parameters(actor: Actor, now: datetime.datetime) -> dict[str, object]:
    """What ``WRITES`` needs besides its inputs: the words and labels it uses, who acts, when, and who is told."""
    user = actor_user(actor)
    content_type = ContentType.objects.get_for_model
    return {
        **fan_out_parameters(EVENT_TYPES, staff=True, now=now),
        "now": now,
        "zone": str(HONG_KONG),
        "facility_type": Facility._meta.label_lower,
        "call_type": MarginCall._meta.label_lower,
        "sale_type": ForcedSale._meta.label_lower,
        "call_content_type": content_type(MarginCall, for_concrete_model=False).pk,
        "sale_content_type": content_type(ForcedSale, for_concrete_model=False).pk,
        "issued": MarginCallStatus.ISSUED.value,
        "issued_label": MarginCallStatus.ISSUED.label,
        "handed": MarginCallStatus.FORCED_SALE.value,
        "handed_label": MarginCallStatus.FORCED_SALE.label,
        "handed_words": CALL_EVENT_WORDS[MarginCallStatus.FORCED_SALE],
        "planned_label": ForcedSaleStatus.PLANNED.label,
        "actor_id": user.pk if user is not None else None,
        "actor_label": actor_label(actor),
        "digest_above": settings.STAFF_ALERT_DIGEST_ABOVE,
        "few_messages": BATCH_DELIVERY_THRESHOLD,
        "digest_examples": DIGEST_EXAMPLES,
    }


@dataclass(frozen=True)
class Written:
    """What a ladder statement did: the actions taken (calls, sales and notices), the sales requested, and
    the facilities (and their clients) it issued a call on that is still issued, or warned."""

    actions: int
    sale_ids: list[int]
    called: dict[int, int]
    warned: dict[int, int]


def _run(sql: str, params: dict[str, object]) -> Written:
    """Run a ladder statement in the caller's transaction; queue the messages' delivery for after commit, and
    tell staff in one digest when the batch alerts them too often (as ``events_record`` does)."""
    with connection.cursor() as cursor:
        # Planned for thousands of rows whatever the arrays hold: JIT compiling a statement this wide costs
        # seconds, and saves nothing on a few thousand rows.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        actions, message_ids, messages, staff_told_each, alerts, first, sale_ids, called, warned = (
            cursor.fetchone()
        )
    if messages:
        messages_delivery_queue(message_ids)
    if not staff_told_each:
        events_record([staff_digest(Counter(alerts), first)])  # ``alerts``: the type of each
    return Written(actions, sale_ids, dict(called), dict(warned))


def _columns(rows: list[tuple], names: list[str], prefix: str) -> dict[str, list]:
    """Rows of values as one array parameter per column (``prefix_name``)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return {f"{prefix}_{name}": list(values) for name, values in zip(names, columns, strict=True)}


def _call_row(call: CallValues, new: bool, before: str, sale, handed_ord: int | None) -> tuple:
    """A call's values; ``sale`` (and ``handed_ord``, its place among the batch's hand-overs) when handed over."""
    party = call.facility
    return (call.pk, party.pk, party.reference, party.client.pk, party.client.email, new, before,
            call.ratio_at_issue, call.debt_at_issue, call.margin_value_at_issue, call.repayment_due,
            call.top_up_due, call.deadline, sale.pk if sale else None, handover_reason(sale) if sale else None,
            handed_ord)  # fmt: skip


def ladder_batch_write(batch: LadderBatch) -> None:
    """Write what ``batch`` collected (calls, sales, hand-overs, notices) in one statement, in the caller's
    transaction."""
    reserve_pks(MarginCall, batch.new_calls)
    reserve_pks(ForcedSale, batch.new_sales)
    sale_of_call = {id(sale.margin_call): sale for sale in batch.new_sales if sale.margin_call}
    befores = batch.handed_statuses()
    handed = {
        id(call): (i, before) for i, (call, before) in enumerate(zip(batch.handed_over, befores, strict=True))
    }
    new = {id(call) for call in batch.new_calls}
    calls = []
    for call in [*batch.new_calls, *(c for c in batch.handed_over if id(c) not in new)]:
        handed_ord, before = handed.get(id(call), (None, MarginCallStatus.ISSUED))
        sale = sale_of_call[id(call)] if handed_ord is not None else None
        calls.append(_call_row(call, id(call) in new, before, sale, handed_ord))
    notices = [
        (n.facility.pk, n.facility.reference, n.facility.client.pk, n.facility.client.email, n.figures.margin_ratio,
         n.figures.margin_value, n.figures.debt, n.figures.status,
         n.thresholds.warning if n.thresholds else None, n.thresholds.margin_call if n.thresholds else None)
        for n in batch.notices
    ]  # fmt: skip
    sales = [
        (s.pk, s.facility.pk, s.facility.reference, s.facility.client.pk, s.facility.client.email, s.trigger,
         ForcedSaleTrigger(s.trigger).label.lower(), s.ratio_at_request, s.margin_call.pk if s.margin_call else None)
        for s in batch.new_sales
    ]  # fmt: skip
    sql, defaults = _ladder_sql(GIVEN_INPUTS)
    _run(
        sql,
        {
            **_columns(notices, ["facility", "reference", "client", "email", "ratio", "margin_value", "debt", "status",
                                 "warning", "margin_call"], "n"),
            **_columns(calls, ["id", "facility", "reference", "client", "email", "new", "before", "ratio", "debt",
                               "margin_value", "repayment", "top_up", "deadline", "sale", "reason", "handed_ord"], "c"),
            **_columns(sales, ["id", "facility", "reference", "client", "email", "trigger", "trigger_words", "ratio",
                               "call"], "s"),
            **defaults,
            **_writes_parameters(batch.actor, batch.now),
        },
    )  # fmt: skip


# The batch's facilities, locked in id order like every other writer takes them (a staff member issuing a
# call, a sale requested at a deadline, a drawdown wait for the batch), with what the revaluation needs of
# their margin states. The states are not locked: the sweep may store a new status while the ladder acts, and
# the ladder marks as acted on the status it acted on, so a newer one stays due for its next run. A facility
# never valued has no state, and nothing for the ladder yet. (Each facility's state is read by its key, in a
# lateral subquery the planner may not flatten: a join would hash every margin state for the batch's few thousand.)
LOCK_SQL = """
WITH locked AS MATERIALIZED (
    SELECT f.id, f.client_id, ms.valued_at FROM financing_facility f
     CROSS JOIN LATERAL (
         SELECT s.valued_at FROM financing_marginstate s WHERE s.facility_id = f.id OFFSET 0
     ) ms
     WHERE f.id = ANY(%(facilities)s::bigint[])
     ORDER BY f.id
       FOR UPDATE OF f
)
SELECT array_agg(id ORDER BY id), array_agg(client_id ORDER BY id), MIN(valued_at) FROM locked
"""


def _lock_and_value_again(facility_ids: list[int], now: datetime.datetime) -> None:
    """Lock the batch's facilities (``LOCK_SQL``) and value again those whose client was posted to since their
    margin state was valued (a top-up or a repayment the sweep did not see), writing the new figures on the
    state: the ladder acts on the truth. Only postings change holdings and debt, so every other state is the
    truth already."""
    with connection.cursor() as cursor:
        cursor.execute(LOCK_SQL, {"facilities": bigint_array(facility_ids)})
        facilities, clients, valued_since = cursor.fetchone()  # as arrays: thousands of rows, one value each
    if not facilities:
        return
    touched = set(
        Leg.objects.filter(
            id_in("account__client_id", set(clients)), transaction__posted_at__gte=posted_since(valued_since)
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
            f"UPDATE {MarginState._meta.db_table} SET market_value = %s, margin_value = %s, debt = %s, "
            "margin_ratio = %s, status_since = CASE WHEN status <> %s THEN %s ELSE status_since END, status = %s, "
            "valued_at = %s WHERE facility_id = %s",
            [(mv, lv, debt, ratio, status, now, status, now, pk) for pk, mv, lv, debt, ratio, status in rows],
        )


@transaction.atomic
def ladder_batch_apply(*, facility_ids: list[int], actor: Actor) -> Written:
    """The ladder for a batch of facilities, decided and written by one statement (``DECIDED_INPUTS``) once
    their rows are locked and the states of the clients posted to since are valued again; every state of the
    batch is marked as acted on. The forced sales requested are started after commit."""
    now = timezone.now()
    _lock_and_value_again(facility_ids, now)
    deadlines = {}  # per cure time and business days, in UTC as stored
    policies = []
    for pk, days, at in MarginPolicy.objects.values_list("pk", "cure_business_days", "cure_time"):
        if (days, at) not in deadlines:
            deadlines[days, at] = cure_deadline(now, days, at).astimezone(datetime.UTC)
        policies.append((pk, deadlines[days, at]))
    sql, defaults = _ladder_sql(DECIDED_INPUTS)
    written = _run(
        sql,
        {
            **defaults,
            **_writes_parameters(actor, now),
            "facilities": bigint_array(facility_ids),
            "default_policy": default_policy().pk,
            "deadline_policies": [pk for pk, _ in policies],
            "deadlines": [deadline for _, deadline in policies],
            "open_call_statuses": list(OPEN_MARGIN_CALL_STATUSES),
            "open_sale_statuses": list(OPEN_FORCED_SALE_STATUSES),
            "threshold": ForcedSaleTrigger.THRESHOLD.value,
            "threshold_words": ForcedSaleTrigger.THRESHOLD.label.lower(),
        },
    )
    if written.sale_ids:
        task_queue_on_commit("financing.forced_sales_start", written.sale_ids)  # one message for the batch
    return written
