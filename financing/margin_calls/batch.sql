-- The statements of financing.margin_calls.batch: a ladder batch written by one statement.

-- name: given_inputs
-- The batch as relations: notice, call (each call issued or handed over, once: a call issued and handed
-- over in the same batch is both) and sale, each numbered in the batch's order.
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

-- name: writes
-- A ladder batch on its inputs (given_inputs here, or decided_inputs of financing.monitoring.ladder): the
-- records, event (every event with its words, payload and who is told, in the order write_in_python records
-- them) and audit; then the writes, the outbox messages, and what the batch did.
WITH {inputs},
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
SELECT (SELECT COUNT(*) FROM call WHERE new) + (SELECT COUNT(*) FROM sale) + (SELECT COUNT(*) FROM notice) AS actions,
       (SELECT CASE WHEN COUNT(*) <= %(few_messages)s THEN array_agg(id ORDER BY id) END FROM messages)
           AS message_ids,
       (SELECT COUNT(*) FROM messages) AS message_count,
       (SELECT each FROM staff_told) AS staff_told_each,
       ARRAY(SELECT type FROM event WHERE staff) AS alerts,
       ARRAY(SELECT summary FROM event WHERE staff ORDER BY part, ord LIMIT %(digest_examples)s) AS first_alerts,
       ARRAY(SELECT id FROM sale ORDER BY ord) AS sale_ids,
       ARRAY(SELECT ARRAY[facility_id, client_id] FROM call WHERE new AND sale_id IS NULL) AS called,
       ARRAY(SELECT ARRAY[facility_id, client_id] FROM notice WHERE warning IS NOT NULL) AS warned

-- name: calls_hand_over
-- The open calls a batch hands to their new sale (run for many; one prepared statement, pipelined: far
-- cheaper than the CASEs of bulk_update).
UPDATE financing_margincall SET status = %(status)s, closed_at = %(closed_at)s, close_reason = %(close_reason)s
 WHERE id = %(id)s

-- name: without_jit
-- Planned for thousands of rows whatever the arrays hold: JIT compiling a statement this wide costs seconds,
-- and saves nothing on a few thousand rows.
SET LOCAL jit = off
