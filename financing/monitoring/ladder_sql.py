"""x"""

from __future__ import annotations

import datetime

from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import Actor
from core.calendar import cure_deadline
from core.db import bigint_array, id_in
from core.locks import lock_rows
from core.tasks import task_queue_on_commit
from financing.enums import (
    OPEN_FORCED_SALE_STATUSES,
    OPEN_MARGIN_CALL_STATUSES,
    ForcedSaleTrigger,
)
from financing.margin_calls.batch import Written, _ladder_sql, _run, _writes_parameters
from financing.models import MarginPolicy, MarginState
from financing.monitoring.sweep import posted_since, valuations_of
from financing.selectors import default_policy
from ledger.models import Leg

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
