"""Writes for webhook endpoints: where the broker's systems receive events. Every change is audited; the
signing secret never appears in the audit trail."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, audit_event_record, snapshot
from core.exceptions import InvalidInput, InvalidTransition
from core.locks import lock_one
from core.validation import validate_model
from notifications.egress import url_refusal
from notifications.enums import DeliveryStatus
from notifications.models import OutboxMessage, WebhookEndpoint

ENDPOINT_FIELDS = ["name", "url", "event_types", "is_active"]
EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
SECRET_MIN_LENGTH = 24


def _clean_url(url: str) -> str:
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise InvalidInput(
            f"{url!r} is not an http(s) URL.", details={"url": ["not an http(s) URL"]}
        ) from None
    refusal = url_refusal(url)
    if refusal is not None:
        raise InvalidInput(f"{refusal}.", code="webhook_address_not_allowed", details={"url": [refusal]})
    return url


def _clean_event_types(event_types: Any) -> list[str]:
    if not isinstance(event_types, list) or not all(isinstance(item, str) for item in event_types):
        raise InvalidInput("event_types is a list of event type names (empty: every event).")
    bad = [item for item in event_types if not EVENT_TYPE_PATTERN.match(item) or len(item) > 60]
    if bad:
        raise InvalidInput(
            f"Not event type names: {', '.join(repr(item) for item in bad)} (e.g. margin_call.issued).",
            details={"event_types": bad},
        )
    return sorted(set(event_types))


def webhook_secret_generate() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


@transaction.atomic
def webhook_endpoint_create(
    *, name: str, url: str, actor: Actor, event_types: list[str] | None = None, secret: str | None = None
) -> WebhookEndpoint:
    """Register an endpoint. Without ``secret`` a strong one is generated; the caller shows it once."""
    if secret is not None and len(secret) < SECRET_MIN_LENGTH:
        raise InvalidInput(f"A signing secret needs at least {SECRET_MIN_LENGTH} characters.")
    endpoint = WebhookEndpoint(
        name=name,
        url=_clean_url(url),
        event_types=_clean_event_types(event_types or []),
        secret=secret or webhook_secret_generate(),
        is_active=True,
    )
    validate_model(endpoint)
    endpoint.save()
    audit_event_record(
        actor=actor,
        action="webhook_endpoint.created",
        target=endpoint,
        after=snapshot(endpoint, ENDPOINT_FIELDS),
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_update(*, endpoint: WebhookEndpoint, actor: Actor, **changes: Any) -> WebhookEndpoint:
    """Change the name, URL or event types. Reactivating is not a change made here: register it again."""
    unknown = set(changes) - {"name", "url", "event_types"}
    if unknown:
        raise InvalidInput(f"These webhook endpoint fields cannot be changed: {', '.join(sorted(unknown))}.")
    endpoint = lock_one(WebhookEndpoint, endpoint.pk)
    if not endpoint.is_active:
        raise InvalidTransition(f"Webhook endpoint {endpoint.name} is deactivated; register a new one.")
    if "url" in changes:
        changes["url"] = _clean_url(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = _clean_event_types(changes["event_types"])
    before = snapshot(endpoint, list(changes))
    for field, value in changes.items():
        setattr(endpoint, field, value)
    after = snapshot(endpoint, list(changes))
    changed = [field for field in changes if before[field] != after[field]]
    if not changed:
        return endpoint
    validate_model(endpoint)
    endpoint.save(update_fields=changed)
    audit_event_record(
        actor=actor,
        action="webhook_endpoint.updated",
        target=endpoint,
        before={field: before[field] for field in changed},
        after={field: after[field] for field in changed},
    )
    return endpoint


@dataclass(frozen=True)
class Deactivation:
    endpoint: WebhookEndpoint
    messages_cancelled: int  # queued for it and never to be sent now


@transaction.atomic
def webhook_endpoint_deactivate(*, endpoint: WebhookEndpoint, actor: Actor) -> Deactivation:
    """Stop sending to an endpoint, including the messages already queued for it (retries too): they are
    cancelled, and counted. The row stays: messages already sent to it keep their history."""
    endpoint = lock_one(WebhookEndpoint, endpoint.pk)
    if not endpoint.is_active:
        raise InvalidTransition(f"Webhook endpoint {endpoint.name} is already deactivated.")
    endpoint.is_active = False
    endpoint.save(update_fields=["is_active"])
    # A message a worker is sending right now is locked: this waits for it (a webhook's timeout at most),
    # then finds it delivered or still pending.
    cancelled = OutboxMessage.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.CANCELLED,
        last_error=f"cancelled: the endpoint was deactivated at {timezone.now().isoformat()}",
    )
    audit_event_record(
        actor=actor,
        action="webhook_endpoint.deactivated",
        target=endpoint,
        before={"is_active": True},
        after={"is_active": False, "messages_cancelled": cancelled},
    )
    return Deactivation(endpoint=endpoint, messages_cancelled=cancelled)
