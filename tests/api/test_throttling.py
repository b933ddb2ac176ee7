"""Throttling per credential: each key (or user) has its own budget; a key may carry its own rate. (The
tests use daily rates, so that a window does not end in the middle of one.)"""

import logging
import socket

import pytest

from api.models import IdempotencyRecord
from financing.models import Drawdown
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db


def test_a_key_over_its_rate_gets_429_with_retry_after(key_client):
    busy = key_client("read", rate="3/day")
    assert [busy.get("/api/v1/assets/").status_code for _ in range(3)] == [200, 200, 200]
    response = busy.get("/api/v1/assets/")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 86400
    assert error["details"] == {"retry_after_seconds": int(response["Retry-After"])}


def test_each_key_has_its_own_budget(key_client):
    busy, quiet = key_client("read", rate="2/day"), key_client("read", rate="2/day")
    for _ in range(2):
        busy.get("/api/v1/assets/")
    assert busy.get("/api/v1/assets/").status_code == 429
    assert quiet.get("/api/v1/assets/").status_code == 200


def test_writes_count_too_and_a_throttled_write_does_nothing(key_client, market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    busy = key_client("lending", rate="1/day")
    body = {"facility": facility.pk, "amount": "1000.00"}
    assert busy.post("/api/v1/drawdowns/", body, format="json").status_code == 201
    response = busy.post("/api/v1/drawdowns/", body, format="json", HTTP_IDEMPOTENCY_KEY="later")
    assert response.status_code == 429
    assert Drawdown.objects.count() == 1
    assert not IdempotencyRecord.objects.exists()  # a throttled request claims no key


def test_users_have_the_default_rate(staff_client, settings):
    settings.API_THROTTLE_RATE = "2/day"
    staff = staff_client("Compliance")
    assert [staff.get("/api/v1/assets/").status_code for _ in range(3)] == [200, 200, 429]


def test_the_default_rate_applies_to_keys_without_their_own(key_client, settings):
    settings.API_THROTTLE_RATE = "1/day"
    plain = key_client("read")
    assert [plain.get("/api/v1/assets/").status_code for _ in range(2)] == [200, 429]


def test_the_count_starts_again_in_the_next_window(key_client, monkeypatch):
    from api import throttling

    now = [1_800_000_000.0]  # the start of a minute
    monkeypatch.setattr(throttling.time, "time", lambda: now[0])
    busy = key_client("read", rate="2/min")
    assert [busy.get("/api/v1/assets/").status_code for _ in range(3)] == [200, 200, 429]
    assert busy.get("/api/v1/assets/")["Retry-After"] == "60"
    now[0] += 59.5
    assert busy.get("/api/v1/assets/")["Retry-After"] == "1"
    now[0] += 0.5
    assert busy.get("/api/v1/assets/").status_code == 200


@pytest.fixture
def cache_down(settings, monkeypatch):
    """The shared cache is a Redis where nothing listens."""
    from api import throttling

    monkeypatch.setattr(throttling, "_cache_down_until", 0.0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }


def test_with_the_cache_down_requests_are_served_unthrottled_and_it_is_logged(
    key_client, market, cache_down, caplog
):
    facility = facility_with_pool(holdings={"BTC": "1"})
    lending = key_client("read", "lending", rate="1/day")
    body = {"facility": facility.pk, "amount": "1000.00"}
    with caplog.at_level(logging.ERROR, logger="api.throttling"):
        assert lending.get("/api/v1/assets/").status_code == 200
        assert lending.post("/api/v1/drawdowns/", body, format="json").status_code == 201
        assert lending.get(f"/api/v1/facilities/{facility.pk}/").status_code == 200
    assert Drawdown.objects.count() == 1
    (record,) = [r for r in caplog.records if r.name == "api.throttling"]  # once, not once per request
    assert "The cache is unreachable" in record.getMessage()
    assert "served unthrottled for 30 s" in record.getMessage()


def test_on_redis_the_count_is_one_round_trip_and_its_window_expires(key_client, settings, monkeypatch):
    """With Redis as the shared cache (production's), a request's count is one MULTI/EXEC: the window's key
    is made with its expiry and incremented together."""
    import os

    from django.core.cache import caches

    from api import throttling

    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail("REDIS_URL is not set: run the tests with `make test` (scripts/services.py starts Redis)")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "throttle-test",
        }
    }
    caches["default"].clear()
    sent = []
    real = throttling._count_in_redis
    monkeypatch.setattr(throttling, "_count_in_redis", lambda *args: sent.append(args) or real(*args))
    busy = key_client("read", rate="2/day")
    assert [busy.get("/api/v1/assets/").status_code for _ in range(3)] == [200, 200, 429]
    assert len(sent) == 3
    backend = caches["default"]
    (key,) = backend._cache.get_client(write=True).keys("throttle-test:*")
    assert int(backend._cache.get_client().get(key)) == 3
    assert 0 < backend._cache.get_client().ttl(key) <= 86400 + 1
    backend.clear()
