"""Throttling per credential: each API key (or logged-in user) has its own budget of requests, counted in
the shared cache (Redis in production, so every gunicorn worker counts together). A key may carry its own
rate; otherwise ``API_THROTTLE_RATE`` applies."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from api.authentication import caller_of


class CredentialRateThrottle(SimpleRateThrottle):
    scope = "credential"

    def __init__(self):
        # The rate depends on the caller, so it is read in allow_request, not here.
        pass

    def get_cache_key(self, request, view):
        caller = caller_of(request)
        if caller is None:
            return None  # refused by authentication or permissions anyway
        return f"throttle:{caller.credential}"

    def allow_request(self, request, view):
        caller = caller_of(request)
        custom = caller.api_key.throttle_rate if caller is not None and caller.api_key is not None else ""
        self.rate = custom or settings.API_THROTTLE_RATE
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)
