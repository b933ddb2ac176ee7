"""Events recorded in the caller's transaction with one outbox message per destination, and delivered after
commit with retries (nothing lost, nothing sent twice). How and why: docs/operations.md."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone
from uuid6 import uuid7

from accounts import roles
from accounts.audit import TargetRef, json_value, target_model
from accounts.models import Client
from core.db import bulk_insert_rows
from core.sql import sql_compose, sql_file
from core.tasks import task_queue_on_commit
from notifications.egress import InvalidIPAddress, webhook_post
from notifications.enums import Channel, DeliveryStatus
from notifications.event_types import is_registered
from notifications.models import Event, OutboxMessage, WebhookEndpoint
from notifications.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign

logger = logging.getLogger(__name__)


def staff_alert_recipients() -> list[str]:
    if settings.STAFF_ALERT_EMAILS:
        return list(settings.STAFF_ALERT_EMAILS)
    users = (
        get_user_model()
        .objects.filter(
            is_active=True, is_staff=True, groups__name__in=[roles.RISK_OFFICER, roles.CREDIT_OFFICER]
        )
        .exclude(email="")
    )
    return sorted(set(users.values_list("email", flat=True)))


@dataclass(frozen=True)
class ClientRef:
    """A client named without loading it: what an event needs of its client."""

    pk: int
    email: str


@dataclass(frozen=True)
class EventSpec:
    """An event to record: what ``event_record`` takes, as a value (for recording many at once)."""

    type: str
    summary: str
    payload: dict[str, Any]
    client: Client | ClientRef | None = None
    subject: models.Model | TargetRef | None = None
    notify_client: bool = True
    notify_staff: bool = True
    notify_webhooks: bool = True  # to each endpoint that wants the type (a staff digest goes to staff only)


# Above this many messages in one call, one task delivers them all instead of one task each.
BATCH_DELIVERY_THRESHOLD = 20


class EventRow(NamedTuple):
    """An event as ``events_record`` writes it, named by ``Event``'s fields."""

    id: uuid.UUID
    type: str
    occurred_at: datetime.datetime
    client_id: int | None
    subject_type: str
    subject_id: str
    summary: str
    payload: Any


class MessageRow(NamedTuple):
    """An outbox message as ``events_record`` writes it, named by ``OutboxMessage``'s fields."""

    event_id: uuid.UUID
    channel: str
    endpoint_id: int | None
    recipient: str
    status: str
    attempts: int
    next_attempt_at: datetime.datetime
    last_error: str
    created_at: datetime.datetime


def events_record(specs: list[EventSpec]) -> list[uuid.UUID]:
    """Write events and their outbox messages (webhooks that want each type, the client's e-mail, staff
    alerts) in the current transaction, in a few statements; queue their delivery for after commit.
    Returns the given events' ids. Rows are built as plain values, never as model instances: the margin-call
    ladder records thousands at a time."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"events {[s.type for s in specs]!r} recorded outside a transaction")
    if not specs:
        return []
    unknown = sorted({spec.type for spec in specs if not is_registered(spec.type)})
    if unknown:
        raise RuntimeError(
            f"event type(s) {', '.join(unknown)} are not registered in notifications/event_types.py: register "
            "each with the schema of its data, so that the broker's systems know what they receive"
        )
    given = len(specs)
    specs = _staff_digest(specs)
    now = timezone.now()
    ids = [uuid7() for _ in specs]  # time-ordered, in order: ``Event.id``'s default
    bulk_insert_rows(
        Event,
        [
            EventRow(
                id=event_id,
                type=spec.type,
                occurred_at=now,
                client_id=spec.client.pk if spec.client is not None else None,
                subject_type=target_model(spec.subject)._meta.label_lower if spec.subject is not None else "",
                subject_id=str(spec.subject.pk) if spec.subject is not None else "",
                summary=spec.summary[:300],
                payload=json_value(spec.payload),
            )
            for event_id, spec in zip(ids, specs, strict=True)
        ],
    )
    alerting_staff = any(spec.notify_staff for spec in specs)
    if connection.vendor == "postgresql" and len(specs) > BATCH_DELIVERY_THRESHOLD:
        _messages_fan_out_in_sql(ids, specs, alerting_staff, now)
        messages_delivery_queue(None)
        return ids[:given]
    endpoints = active_endpoints()
    staff = staff_alert_recipients() if alerting_staff else []
    pending = {"status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": now, "last_error": "",
               "created_at": now}  # fmt: skip
    messages = []
    for event_id, spec in zip(ids, specs, strict=True):
        messages += [
            MessageRow(
                event_id=event_id, channel=Channel.WEBHOOK, endpoint_id=endpoint.pk, recipient="", **pending
            )
            for endpoint in endpoints
            if spec.notify_webhooks and endpoint.wants(spec.type)
        ]
        messages += [
            MessageRow(
                event_id=event_id, channel=Channel.EMAIL, endpoint_id=None, recipient=address, **pending
            )
            for address in _email_recipients(spec, staff)
        ]
    if len(messages) > BATCH_DELIVERY_THRESHOLD:
        bulk_insert_rows(OutboxMessage, messages)
        messages_delivery_queue(None)
    else:
        created = OutboxMessage.objects.bulk_create(OutboxMessage(**row._asdict()) for row in messages)
        messages_delivery_queue([message.pk for message in created])
    return ids[:given]  # the events asked for (a staff digest, when one was added, comes last)


DIGEST_EXAMPLES = 20


def _staff_digest(specs: list[EventSpec]) -> list[EventSpec]:
    """``specs`` as they are, or, when more than ``STAFF_ALERT_DIGEST_ABOVE`` of them would alert staff,
    with staff alerted once by a digest of them (counts by type, the first few in words) instead of once
    per event: after a crash the risk desk gets one e-mail per batch, not thousands. Clients and webhooks
    still get every event."""
    alerting = [spec for spec in specs if spec.notify_staff]
    if not staff_digest_due(len(alerting)):
        return specs
    digest = staff_digest(
        Counter(spec.type for spec in alerting), [spec.summary for spec in alerting[:DIGEST_EXAMPLES]]
    )
    return [
        dataclasses.replace(spec, notify_staff=False) if spec.notify_staff else spec for spec in specs
    ] + [digest]


def active_endpoints() -> list[WebhookEndpoint]:
    """The active webhook endpoints, for messages about to name them. On PostgreSQL they are read under ``FOR
    KEY SHARE`` (what a key check at commit would take): the messages carry no key check, and an endpoint
    being deleted meanwhile waits for this transaction, then is refused for the messages it finds (migration
    notifications 0002)."""
    if connection.vendor != "postgresql":
        return list(WebhookEndpoint.objects.filter(is_active=True))
    return list(WebhookEndpoint.objects.raw(sql_file(__file__, "outbox.sql", "active_endpoints")))


def staff_digest_due(alerts: int) -> bool:
    """Whether one batch's ``alerts`` staff alerts are told to staff as one digest (``staff_digest``)."""
    return alerts > settings.STAFF_ALERT_DIGEST_ABOVE


def staff_digest(counts: Counter, first: list[str]) -> EventSpec:
    """The one staff alert that stands for a batch's many: how many of each type, and the first few
    (``first``, at most ``DIGEST_EXAMPLES`` summaries, in the batch's order) in words."""
    by_type = ", ".join(f"{count:,} {event_type}" for event_type, count in sorted(counts.items()))
    total = sum(counts.values())
    return EventSpec(
        type="alerts.digest",
        summary=f"{total:,} alerts at once ({by_type}): see the at-risk list",
        payload={"alerts": total, "by_type": dict(sorted(counts.items())), "first": first[:DIGEST_EXAMPLES]},
        notify_client=False,
        notify_webhooks=False,
    )


def _email_recipients(spec: EventSpec, staff: list[str]) -> list[str]:
    """The client (when told) and the staff (when alerted), each address once."""
    recipients = []
    if spec.notify_client and spec.client is not None and spec.client.email:
        recipients.append(spec.client.email)
    if spec.notify_staff:
        recipients.extend(staff)
    return list(dict.fromkeys(recipients))


@functools.cache
def messages_from_events_sql(events: str) -> str:
    """The statement that writes the outbox messages of the events in the relation ``events`` (its columns:
    id, type, client_email, staff, webhooks), as ``events_record`` would; its parameters are
    ``fan_out_parameters``'s."""
    return sql_compose(sql_file(__file__, "outbox.sql", "messages_from_events"), events=events)


@functools.cache
def _fan_out_sql() -> str:
    return sql_compose(sql_file(__file__, "outbox.sql", "fan_out"), messages=messages_from_events_sql("e"))


def fan_out_parameters(types, *, staff: bool, now: datetime.datetime) -> dict[str, object]:
    """The parameters of ``messages_from_events_sql`` for events of ``types``: the active endpoints that want
    each type, the staff addresses (when any event alerts staff) and the time the messages are due."""
    endpoints = active_endpoints()
    wanted = [(endpoint.pk, t) for endpoint in endpoints for t in sorted(set(types)) if endpoint.wants(t)]
    return {
        "endpoint_ids": [pk for pk, _ in wanted],
        "endpoint_types": [t for _, t in wanted],
        "staff_addresses": list(dict.fromkeys(staff_alert_recipients())) if staff else [],
        "now": now,
    }


def _messages_fan_out_in_sql(ids, specs: list[EventSpec], staff: bool, now) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _fan_out_sql(),
            {
                "ids": ids,
                "types": [spec.type for spec in specs],
                "client_emails": [
                    spec.client.email if spec.notify_client and spec.client is not None else ""
                    for spec in specs
                ],
                "staff": [spec.notify_staff for spec in specs],
                "webhooks": [spec.notify_webhooks for spec in specs],
                **fan_out_parameters([spec.type for spec in specs], staff=staff, now=now),
            },
        )


def messages_delivery_queue(message_ids: list[int] | None) -> None:
    """Queue, for after commit, the delivery of messages just written: one task each for a few
    (``message_ids``), or one task for everything due (None: many, or not known one by one)."""
    if message_ids is None:
        task_queue_on_commit("notifications.deliver_due_messages")
        return
    for pk in message_ids:
        task_queue_on_commit("notifications.deliver_outbox_message", pk)


def event_record(
    *,
    type: str,
    summary: str,
    payload: dict[str, Any],
    client: Client | None = None,
    subject: models.Model | None = None,
    notify_client: bool = True,
    notify_staff: bool = True,
) -> Event:
    """Record one event, in the caller's transaction (see ``events_record``)."""
    (event_id,) = events_record(
        [EventSpec(type, summary, payload, client, subject, notify_client, notify_staff)]
    )
    return Event.objects.get(pk=event_id)


def webhook_body(event: Event) -> bytes:
    body = {
        "id": str(event.id),
        "type": event.type,
        "occurred_at": event.occurred_at,
        "summary": event.summary,
        "client": event.client.reference if event.client_id else None,
        "subject": {"type": event.subject_type, "id": event.subject_id} if event.subject_type else None,
        "data": event.payload,
    }
    return json.dumps(body, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":")).encode()


def _send(message: OutboxMessage) -> None:
    event = message.event
    if message.channel == Channel.WEBHOOK:
        body = webhook_body(event)
        response = webhook_post(
            message.endpoint.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                EVENT_ID_HEADER: str(event.id),
                EVENT_TYPE_HEADER: event.type,
                SIGNATURE_HEADER: sign(message.endpoint.secret, body),
            },
        )
        if not 200 <= response.status_code < 300:
            raise RuntimeError(
                f"HTTP {response.status_code} from {message.endpoint.url}: {response.text[:200]}"
            )
    else:
        lines = [
            event.summary,
            "",
            f"Event: {event.type} ({event.id})",
            f"Time: {event.occurred_at:%Y-%m-%d %H:%M:%S %Z}",
        ]
        for key, value in event.payload.items():
            if isinstance(value, list):  # one item a line
                lines += [f"{key.replace('_', ' ')}:", *(f"  {item}" for item in value)]
            elif isinstance(value, dict):
                lines.append(
                    f"{key.replace('_', ' ')}: " + ", ".join(f"{k}: {v}" for k, v in sorted(value.items()))
                )
            else:
                lines.append(f"{key.replace('_', ' ')}: {value}")
        send_mail(
            subject=f"[Margin] {event.summary}"[:200],
            message="\n".join(lines),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[message.recipient],
        )


def backoff(attempts: int) -> datetime.timedelta:
    seconds = min(
        settings.OUTBOX_BACKOFF_BASE_SECONDS * 2 ** (attempts - 1), settings.OUTBOX_BACKOFF_MAX_SECONDS
    )
    return datetime.timedelta(seconds=seconds)


def outbox_deliver(*, message_id: int) -> str:
    """Deliver one message if it is pending and due. Returns what happened: delivered, retry, failed,
    cancelled (its endpoint was deactivated), or skipped (not due, already done, or being sent by another worker)."""
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event__client", "endpoint")
            .filter(pk=message_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
            .first()
        )
        if message is None:
            return "skipped"
        if message.endpoint is not None and not message.endpoint.is_active:  # deactivated since it was queued
            message.status = DeliveryStatus.CANCELLED
            message.last_error = "cancelled: the endpoint is deactivated"
            message.save(update_fields=["status", "last_error"])
            return "cancelled"
        message.attempts += 1
        try:
            _send(message)
        except Exception as error:  # any failure to deliver is recorded and retried, never lost
            message.last_error = f"{type(error).__name__}: {error}"[:2000]
            if isinstance(error, InvalidIPAddress):  # retrying cannot help: failed now, for staff to see
                message.last_error = (
                    f"refused: {message.endpoint.url} resolves to {error}, a private or reserved address; "
                    "add the host to WEBHOOK_TRUSTED_HOSTS if it is the broker's own system, then send it again"
                )
                message.status = DeliveryStatus.FAILED
                logger.error("outbox message %s refused: %s", message.pk, message.last_error)
            elif message.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
                message.status = DeliveryStatus.FAILED
                logger.error("outbox message %s failed for good: %s", message.pk, message.last_error)
            else:
                message.next_attempt_at = timezone.now() + backoff(message.attempts)
                logger.warning(
                    "outbox message %s attempt %s failed: %s",
                    message.pk,
                    message.attempts,
                    message.last_error,
                )
            message.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
            return "failed" if message.status == DeliveryStatus.FAILED else "retry"
        message.status = DeliveryStatus.DELIVERED
        message.delivered_at = timezone.now()
        message.last_error = ""
        message.save(update_fields=["attempts", "status", "delivered_at", "last_error"])
        return "delivered"


def outbox_due_ids(*, limit: int = 500) -> list[int]:
    return list(
        OutboxMessage.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def outbox_retry_failed(*, message: OutboxMessage) -> OutboxMessage:
    """Staff put a failed message back in the queue (after fixing the endpoint, say); never one for a
    deactivated endpoint."""
    with transaction.atomic():
        updated = (
            OutboxMessage.objects.filter(pk=message.pk)
            .filter(~Q(status=DeliveryStatus.DELIVERED))
            .filter(Q(endpoint__isnull=True) | Q(endpoint__is_active=True))
            .update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now(), attempts=0)
        )
        if updated:
            task_queue_on_commit("notifications.deliver_outbox_message", message.pk)
    message.refresh_from_db()
    return message
