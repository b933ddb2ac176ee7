"""The audit trail: every state change writes an event in the same transaction as the change."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone
from djmoney.money import Money

from accounts.models import AuditEvent, User
from core.db import bulk_insert_rows


@dataclass(frozen=True)
class SystemActor:
    """A change made by the platform itself (the sweep, a scheduled task, an automatic sale)."""

    label: str = "system"

    @property
    def audit_label(self) -> str:
        return self.label


SYSTEM = SystemActor()

Actor = User | SystemActor | Any  # anything with ``audit_label`` (API keys carry one too)


def actor_label(actor: Actor | None) -> str:
    if actor is None:
        return SYSTEM.label
    if isinstance(actor, User):
        return actor.get_username()
    return str(actor.audit_label)


def actor_user(actor: Actor | None) -> User | None:
    if isinstance(actor, User):
        return actor
    return getattr(actor, "audit_user", None)


def decimal_text(value: Decimal) -> str:
    """A decimal as a JSON string: every digit it has, in plain notation ("0.00000000", never Python's
    "0E-8"), as PostgreSQL writes a ``numeric``."""
    return f"{value:f}"


def json_value(value: Any) -> Any:
    """A JSON-safe, exact rendering of a field value: decimals and money as strings, never floats."""
    if value is None or type(value) in (str, int, bool):  # the common case first: nothing to convert
        return value
    if isinstance(value, Money):
        return {"amount": decimal_text(value.amount), "currency": str(value.currency)}
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return value


def snapshot(instance: models.Model, fields: list[str]) -> dict[str, Any]:
    return {name: json_value(getattr(instance, name)) for name in fields}


@dataclass(frozen=True)
class TargetRef:
    """A record named without loading it (the margin-call ladder names thousands): its model, primary key
    and how it reads. Audit events and notification events take one wherever they take an instance."""

    model: type[models.Model]
    pk: Any
    label: str

    def __str__(self) -> str:
        return self.label


def target_model(target: models.Model | TargetRef) -> type[models.Model]:
    # ``__class__``, not ``type()``: a request's user is a lazy object that reports the class it wraps.
    return target.model if isinstance(target, TargetRef) else target.__class__


@dataclass(frozen=True)
class AuditSpec:
    """An audit event to write: what ``audit_event_record`` takes, as a value (for writing many at once)."""

    actor: Any
    action: str
    target: models.Model | TargetRef | None = None
    before: dict | None = None
    after: dict | None = None


class AuditRow(NamedTuple):
    """An audit event as plain values, named by ``AuditEvent``'s fields."""

    created_at: datetime.datetime
    actor_id: int | None
    actor_label: str
    action: str
    target_type_id: int | None
    target_id: str
    target_repr: str
    before: Any
    after: Any


def _audit_row(spec: AuditSpec, now) -> AuditRow:
    user = actor_user(spec.actor)
    target = spec.target
    return AuditRow(
        created_at=now,
        actor_id=user.pk if user is not None else None,
        actor_label=actor_label(spec.actor),
        action=spec.action,
        target_type_id=ContentType.objects.get_for_model(target_model(target), for_concrete_model=False).pk
        if target is not None
        else None,
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        before=json_value(spec.before) if spec.before is not None else None,
        after=json_value(spec.after) if spec.after is not None else None,
    )


def _refuse_outside_transaction(specs: list[AuditSpec]) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"audit events {[s.action for s in specs]!r} written outside a transaction")


def audit_events_record(specs: list[AuditSpec]) -> int:
    """Write audit events in one statement, built as plain values (the margin-call ladder writes thousands
    at a time). Refuses to run outside a transaction: the events must commit or roll back together with the
    changes they describe. Returns how many."""
    _refuse_outside_transaction(specs)
    now = timezone.now()
    return bulk_insert_rows(AuditEvent, [_audit_row(spec, now) for spec in specs])


def audit_event_record(
    *,
    actor: Actor | None,
    action: str,
    target: models.Model | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Write one audit event, in the caller's transaction."""
    spec = AuditSpec(actor, action, target, before, after)
    _refuse_outside_transaction([spec])
    event = AuditEvent(**_audit_row(spec, timezone.now())._asdict())
    event.save()
    return event
