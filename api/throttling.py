"""Throttling per credential (API key or user), counted in the shared cache with an atomic increment so
that every worker counts together (docs/api.md, "Who may do what")."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from api.authentication import caller_of

parse_rate = SimpleRateThrottle.parse_rate


class CredentialRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        caller = caller_of(request)
        if caller is None:
            return True  # refused by authentication or permissions anyway
        rate = (
            caller.api_key.throttle_rate if caller.api_key is not None else ""
        ) or settings.API_THROTTLE_RATE
        allowed, duration = parse_rate(None, rate)
        now = time.time()
        window = int(now // duration)
        key = f"throttle:{caller.credential}:{duration}:{window}"
        cache.add(key, 0, timeout=duration + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # the window's key expired between add and incr
            cache.set(key, 1, timeout=duration + 1)
            count = 1
        self.retry_after = (window + 1) * duration - now
        return count <= allowed

    def wait(self) -> float:
        return self.retry_after
