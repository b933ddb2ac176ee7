-- The statements of financing.monitoring.ladder: a batch locked, valued again, decided and written.

-- name: lock
-- The batch's facilities, locked in id order like every other writer takes them (a staff member issuing a
-- call, a sale requested at a deadline, a drawdown wait for the batch), with what the revaluation needs of
-- their margin states. The states are not locked: the sweep may store a new status while the ladder acts, and
-- the ladder marks as acted on the status it acted on, so a newer one stays due for its next run. A facility
-- never valued has no state, and nothing for the ladder yet. (Each facility's state is read by its key, in a
-- lateral subquery the planner may not flatten: a join would hash every margin state for the batch's few
-- thousand.)
WITH locked AS MATERIALIZED (
    SELECT f.id, f.client_id, ms.valued_at FROM financing_facility f
     CROSS JOIN LATERAL (
         SELECT s.valued_at FROM financing_marginstate s WHERE s.facility_id = f.id OFFSET 0
     ) ms
     WHERE f.id = ANY(%(facilities)s::bigint[])
     ORDER BY f.id
       FOR UPDATE OF f
)
SELECT array_agg(id ORDER BY id) AS facilities, array_agg(client_id ORDER BY id) AS clients,
       MIN(valued_at) AS valued_since
  FROM locked

-- name: states_valued_again
-- The new figures of a state valued again before the ladder acts (run for many).
UPDATE financing_marginstate
   SET market_value = %(market_value)s, margin_value = %(margin_value)s, debt = %(debt)s,
       margin_ratio = %(margin_ratio)s,
       status_since = CASE WHEN status <> %(status)s THEN %(now)s ELSE status_since END, status = %(status)s,
       valued_at = %(now)s
 WHERE facility_id = %(facility_id)s

-- name: states_acted_on_valued_again
-- A state valued again by ladder_apply_in_python, with the new figures it acted on (run for many).
UPDATE financing_marginstate
   SET market_value = %(market_value)s, margin_value = %(margin_value)s, debt = %(debt)s,
       margin_ratio = %(margin_ratio)s, status = %(status)s, notified_status = %(status)s, valued_at = %(now)s,
       status_since = %(status_since)s
 WHERE facility_id = %(facility_id)s

-- name: decided_inputs
-- The inputs decided here, for a batch of facilities whose margin status moved since the ladder last acted
-- (their rows are locked by then): each facility's state, policy, open call and whether a sale is open (due);
-- what the ladder does about it (decided: the table in the docstring of financing.monitoring.ladder); the
-- keys of the calls and sales it makes, in facility order; then the same relations as given_inputs of
-- financing.margin_calls.batch. Every state of the batch is marked as acted on (acknowledged): with the
-- status it was acted on at.
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
           -- The exact cash top-up where a concentration cut binds (worked out before the statement by
           -- financing.selectors.cash_top_ups_to_target); D/T − LV, exact, everywhere else.
           COALESCE((SELECT e.top_up FROM unnest(%(exact_facilities)s::bigint[], %(exact_top_ups)s::numeric[])
                                           AS e(facility_id, top_up)
                      WHERE e.facility_id = d.facility_id),
                    cure_top_up(d.debt, d.margin_value, d.target)) AS top_up
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
