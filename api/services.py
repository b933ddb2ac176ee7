"""Writes for API keys: create (the key is returned once), revoke, record use."""

from __future__ import annotations

import datetime
import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, actor_label, audit_event_record
from api.enums import Scope
from api.models import ApiKey, IdempotencyRecord
from core.exceptions import InvalidInput, InvalidTransition
from core.locks import lock_one
from core.validation import validate_model

KEY_MARK = "mfk"  # "margin financing key": lets secret scanners and people recognise a key
LAST_USE_RESOLUTION = datetime.timedelta(minutes=1)


def api_key_digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def _parse_scopes(scopes) -> list[str]:
    if isinstance(scopes, str):
        scopes = [part.strip() for part in scopes.split(",")]
    chosen = sorted({scope for scope in scopes if scope})
    if not chosen:
        raise InvalidInput(f"An API key needs at least one scope ({', '.join(Scope.values)}).")
    unknown = [scope for scope in chosen if scope not in Scope.values]
    if unknown:
        raise InvalidInput(
            f"Unknown scope(s): {', '.join(unknown)}. The scopes are {', '.join(Scope.values)}.",
            details={"scopes": unknown},
        )
    return chosen


@transaction.atomic
def api_key_create(*, name: str, scopes, actor: Actor, throttle_rate: str = "") -> tuple[ApiKey, str]:
    """Create a key and return it with the raw key, which is never stored and cannot be shown again."""
    if ApiKey.objects.filter(name=name).exists():
        raise InvalidInput(f"There is already an API key named {name}.", code="duplicate_api_key")
    prefix = secrets.token_hex(4)
    while ApiKey.objects.filter(prefix=f"{KEY_MARK}_{prefix}").exists():  # 1 in 4 billion; still
        prefix = secrets.token_hex(4)
    raw_key = f"{KEY_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(
        name=name,
        prefix=f"{KEY_MARK}_{prefix}",
        key_hash=api_key_digest(raw_key),
        scopes=_parse_scopes(scopes),
        throttle_rate=throttle_rate,
        created_by=actor_label(actor),
    )
    validate_model(api_key)
    api_key.save()
    audit_event_record(
        actor=actor,
        action="api_key.created",
        target=api_key,
        after={
            "name": name,
            "prefix": api_key.prefix,
            "scopes": api_key.scopes,
            "throttle_rate": throttle_rate,
        },
    )
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    api_key = lock_one(ApiKey, api_key.pk)
    if api_key.revoked_at is not None:
        raise InvalidTransition(
            f"The API key {api_key.name} was already revoked on {api_key.revoked_at:%Y-%m-%d}."
        )
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    audit_event_record(
        actor=actor,
        action="api_key.revoked",
        target=api_key,
        before={"revoked_at": None},
        after={"revoked_at": api_key.revoked_at},
    )
    return api_key


def api_key_record_use(*, api_key: ApiKey, now: datetime.datetime | None = None) -> None:
    """Remember when a key was last used, to the minute: at most one small write a minute per key, so
    that a busy key does not turn every request into a write on the same row. Not audited: it is a
    reading, not a change anyone made."""
    now = now or timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USE_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).exclude(last_used_at__gt=now - LAST_USE_RESOLUTION).update(
        last_used_at=now
    )
    api_key.last_used_at = now


def idempotency_records_purge(*, older_than: datetime.timedelta, now: datetime.datetime | None = None) -> int:
    """Forget stored responses older than ``older_than``: a retry after that is a new request. (Drawdowns
    and repayments stay protected: the ledger keeps its own key for each, for good.)"""
    cutoff = (now or timezone.now()) - older_than
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
