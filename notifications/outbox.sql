-- The statements of notifications.services: the outbox messages of many events, made by the database.

-- name: messages_from_events
-- The same messages as the loop in events_record, made by the database from a relation e of the events
-- (id, type, client_email: empty when the client is not told, staff: whether staff are alerted, webhooks:
-- whether endpoints are): for a batch of thousands of events (the margin-call ladder after a price move) it
-- writes three or four times as many messages without building a row of them in Python. Its parameters are
-- those of fan_out_parameters.
INSERT INTO notifications_outboxmessage
       (event_id, channel, endpoint_id, recipient, status, attempts, next_attempt_at, last_error, created_at)
SELECT e.id, 'webhook', w.endpoint_id, '', 'pending', 0, %(now)s, '', %(now)s
  FROM {events} e JOIN unnest(%(endpoint_ids)s::bigint[], %(endpoint_types)s::text[]) AS w(endpoint_id, type)
    ON w.type = e.type AND e.webhooks
UNION ALL
SELECT e.id, 'email', NULL, e.client_email, 'pending', 0, %(now)s, '', %(now)s
  FROM {events} e WHERE e.client_email <> ''
UNION ALL
SELECT e.id, 'email', NULL, s.address, 'pending', 0, %(now)s, '', %(now)s
  FROM {events} e CROSS JOIN unnest(%(staff_addresses)s::text[]) AS s(address)
 WHERE e.staff AND s.address <> e.client_email

-- name: fan_out
-- The messages of events given as arrays (events_record, for a batch of more than a few).
WITH e AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(types)s::text[], %(client_emails)s::text[], %(staff)s::boolean[],
                         %(webhooks)s::boolean[])
        AS e(id, type, client_email, staff, webhooks)
)
{messages}

-- name: active_endpoints
-- Read under FOR KEY SHARE (what a key check at commit would take): see active_endpoints.
SELECT * FROM notifications_webhookendpoint WHERE is_active ORDER BY name FOR KEY SHARE
