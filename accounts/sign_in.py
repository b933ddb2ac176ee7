"""Signing in: every login, failed login and lockout goes into the audit trail, and staff lift a lockout
through an audited service. django-axes counts the failures and locks out (per username and per address);
its handler below is where each attempt is recorded (docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db import transaction

from accounts.audit import Actor, actor_user, audit_event_record
from accounts.models import User
from core.exceptions import InvalidInput, PermissionRefused
from core.locks import lock_rows

LIFT_PERMISSION = "axes.delete_accessattempt"


def client_ip_address(request) -> str | None:
    """The caller's address: ``REMOTE_ADDR``, or, behind ``TRUSTED_PROXY_COUNT`` reverse proxies, the address
    the outermost of them saw (the n-th from the right of ``X-Forwarded-For``: entries further left are
    whatever the caller chose to send, and must not decide whose failures count)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR")
    if proxies <= 0:
        return remote
    forwarded = [
        part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
    ]
    return forwarded[-proxies] if len(forwarded) >= proxies else remote


@dataclass(frozen=True)
class Anonymous:
    """Whoever typed at a login form: known only by their address until a login succeeds."""

    ip_address: str | None

    @property
    def audit_label(self) -> str:
        return f"anonymous@{self.ip_address or 'unknown'}"


def _request_facts(request) -> dict:
    return {
        "ip_address": getattr(request, "axes_ip_address", None) or client_ip_address(request),
        "path": request.path[:200] if hasattr(request, "path") else "",
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200],
    }


def _user_named(username: str | None) -> User | None:
    if not username:
        return None
    return User.objects.filter(username=username).first()


@transaction.atomic
def login_success_record(*, request, user: User) -> None:
    audit_event_record(actor=user, action="login.succeeded", target=user, after=_request_facts(request))


@transaction.atomic
def login_failure_record(
    *, request, username: str | None, failures: int | None, locked_now: bool, refused_while_locked: bool
) -> None:
    """One failed login: a wrong password, or any password while locked out. The attempt that reaches the
    limit also records the lockout."""
    facts = _request_facts(request)
    actor = Anonymous(facts["ip_address"])
    target = _user_named(username)
    reason = "locked out" if refused_while_locked else "wrong username or password"
    audit_event_record(
        actor=actor,
        action="login.failed",
        target=target,
        after={**facts, "username": (username or "")[:150], "reason": reason, "failures": failures},
    )
    if locked_now:
        cool_off = get_cool_off(request)
        audit_event_record(
            actor=actor,
            action="login.locked_out",
            target=target,
            after={
                **facts,
                "username": (username or "")[:150],
                "failures": failures,
                "locked_for_seconds": int(cool_off.total_seconds()) if cool_off else None,
            },
        )


@transaction.atomic
def login_lockout_lift(*, attempts: list[AccessAttempt], actor: Actor) -> int:
    """Forget the failed logins behind a lockout (of a username, an address, or both), so the next login is
    judged afresh. Only staff allowed to (administrators) may; each user or address lifted is audited.
    Returns how many failures were forgotten."""
    user = actor_user(actor)
    if user is None or not user.is_active or not user.has_perm(LIFT_PERMISSION):
        raise PermissionRefused(f"{getattr(user, 'username', 'This actor')} may not lift a login lockout.")
    rows = lock_rows(AccessAttempt.objects.filter(pk__in=[attempt.pk for attempt in attempts]))
    if not rows:
        raise InvalidInput("There are no failed logins to forget.", code="no_change")
    forgotten = 0
    for row in rows:
        target = _user_named(row.username)
        audit_event_record(
            actor=actor,
            action="login.lockout_lifted",
            target=target,
            before={
                "username": row.username,
                "ip_address": row.ip_address,
                "failures": row.failures_since_start,
                "last_failure_at": row.attempt_time,
            },
            after={"failures": 0},
        )
        forgotten += row.failures_since_start
    AccessAttempt.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return forgotten


def login_lockout_lift_for_user(*, user: User, actor: Actor) -> int:
    """Lift a user's lockout: every failed-login record under their username."""
    attempts = list(AccessAttempt.objects.filter(username=user.get_username()))
    if not attempts:
        raise InvalidInput(f"{user.get_username()} has no failed logins to forget.", code="no_change")
    return login_lockout_lift(attempts=attempts, actor=actor)


class AuditedAxesHandler(AxesDatabaseHandler):
    """django-axes' database handler (the counting and the lockout) with every attempt also written to the
    audit trail. Axes calls it from Django's login signals; the project adds no receiver of its own."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None:
            return super().user_login_failed(sender, credentials, request, **kwargs)
        refused_while_locked = bool(getattr(request, "axes_locked_out", False))
        super().user_login_failed(sender, credentials, request, **kwargs)
        login_failure_record(
            request=request,
            username=get_client_username(request, credentials),
            failures=getattr(request, "axes_failures_since_start", None),
            locked_now=not refused_while_locked and bool(getattr(request, "axes_locked_out", False)),
            refused_while_locked=refused_while_locked,
        )

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        login_success_record(request=request, user=user)
