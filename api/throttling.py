"""Throttling per credential: each API key (or logged-in user) has its own budget of requests. A key may
carry its own rate; otherwise ``API_THROTTLE_RATE`` applies.

The count is a fixed window kept in the shared cache with an atomic increment (Redis ``INCR`` in
production), so every gunicorn worker and container counts together and no request is lost to a race —
unlike DRF's default throttles, which read, change and write back a list of timestamps. A window allows
at most the rate; a burst straddling two windows can reach twice it, which is the usual price of a fixed
window.

When the cache cannot be reached, throttling fails open: requests are served unthrottled, and the outage is
logged, instead of every request answering 500. For ``CACHE_DOWN_SECONDS`` after a failure the cache is not
asked again, so an outage costs one connection timeout per process, not one per request
(docs/resilience.md)."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from api.authentication import caller_of

logger = logging.getLogger(__name__)

parse_rate = SimpleRateThrottle.parse_rate

# How long a process serves requests unthrottled after the cache failed, before it tries the cache again.
CACHE_DOWN_SECONDS = 30.0
_cache_down_until = 0.0


def _count(key: str, duration: int) -> int | None:
    """The window's count after this request, or None when the cache cannot be reached (fail open)."""
    global _cache_down_until
    if time.monotonic() < _cache_down_until:
        return None
    try:
        cache.add(key, 0, timeout=duration + 1)
        try:
            return cache.incr(key)
        except ValueError:  # the window's key expired between add and incr
            cache.set(key, 1, timeout=duration + 1)
            return 1
    except Exception as error:  # the backend's own connection errors (redis, memcached, …)
        _cache_down_until = time.monotonic() + CACHE_DOWN_SECONDS
        logger.error(
            "The cache is unreachable (%s: %s): API requests are served unthrottled for %d s before it is "
            "tried again",
            type(error).__name__,
            error,
            CACHE_DOWN_SECONDS,
        )
        return None


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
        count = _count(f"throttle:{caller.credential}:{duration}:{window}", duration)
        self.retry_after = (window + 1) * duration - now
        return count is None or count <= allowed

    def wait(self) -> float:
        return self.retry_after
