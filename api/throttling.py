"""Throttling per credential (API key or user), counted in the shared cache with an atomic increment so that
every worker counts together; with the cache down it fails open and says so (docs/api.md, docs/resilience.md)."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
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
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            return _count_in_redis(backend, key, duration)
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


def _count_in_redis(backend: RedisCache, key: str, duration: int) -> int:
    """The count in one round trip to Redis (Django's ``add`` then ``incr`` take three: ``incr`` asks whether
    the key exists first): create the window's key with its expiry unless it exists, and increment it, in one
    MULTI/EXEC, so that the key cannot expire between the two."""
    full_key = backend.make_and_validate_key(key)
    pipeline = backend._cache.get_client(full_key, write=True).pipeline(transaction=True)
    pipeline.set(full_key, 0, ex=duration + 1, nx=True)
    pipeline.incr(full_key)
    return pipeline.execute()[1]


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
