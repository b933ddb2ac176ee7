"""Staff sessions: a second factor before any page but the sign-in ones, and an end after an idle period and
at a maximum age (docs/security.md). The REST API checks the second factor itself (its own error shape)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.db import transaction
from django.shortcuts import redirect, resolve_url
from django.urls import reverse

from accounts.audit import audit_event_record
from accounts.second_factor import is_enrolled, needs_second_factor

STARTED = "staff_session_started_at"
SEEN = "staff_session_seen_at"
SEEN_RESOLUTION_SECONDS = 60  # the session is written at most once a minute to remember the last request


def _exempt_prefixes() -> tuple[str, ...]:
    return (
        reverse("accounts:second_factor_verify"),  # the second-factor pages themselves
        reverse("admin:logout"),
        reverse("admin:login"),
        resolve_url(settings.LOGIN_URL),  # the site's own sign-in and sign-out: never behind a second factor
        resolve_url(settings.LOGOUT_URL),
        "/api/",  # DRF's authentication refuses an unverified staff session in the API's error shape
        settings.STATIC_URL if settings.STATIC_URL.startswith("/") else f"/{settings.STATIC_URL}",
    )


def _session_expiry(request, now: int) -> str | None:
    """Why the staff session is over (idle too long, or too old), or None; remembers this request."""
    session = request.session
    started, seen = session.get(STARTED), session.get(SEEN)
    if started is None or seen is None:
        session[STARTED] = session[SEEN] = now
        return None
    if now - seen > settings.STAFF_SESSION_IDLE_SECONDS:
        return "idle"
    if now - started > settings.SESSION_COOKIE_AGE:
        return "max_age"
    if now - seen >= SEEN_RESOLUTION_SECONDS:
        session[SEEN] = now
    return None


class StaffSessionMiddleware:
    """After ``OTPMiddleware``: for staff users only (client users keep their plain session)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if needs_second_factor(user):
            expired = _session_expiry(request, int(time.time()))
            if expired is not None:
                with transaction.atomic():
                    audit_event_record(
                        actor=user, action="session.expired", target=user, after={"reason": expired}
                    )
                logout(request)
                if request.path.startswith("/api/"):
                    return self.get_response(request)  # now anonymous: the API answers 401/403 itself
                return redirect(f"{reverse('admin:login')}?{urlencode({'next': request.get_full_path()})}")
            if not user.is_verified() and not request.path.startswith(_exempt_prefixes()):
                page = (
                    "accounts:second_factor_verify" if is_enrolled(user) else "accounts:second_factor_enrol"
                )
                return redirect(f"{reverse(page)}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
