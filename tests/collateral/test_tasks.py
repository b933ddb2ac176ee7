"""The price refresh task: one service call, a JSON summary, bounded retries only when they can help."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError

from collateral import tasks
from collateral.models import PriceQuote
from collateral.selectors import current_prices

pytestmark = pytest.mark.django_db


def test_the_refresh_task_records_prices_and_returns_a_json_summary(oracle):
    oracle[1].set_price("ETH/USD", "3500")  # within 5% of the median 3400: the median stays 3400
    summary = tasks.refresh_crypto_prices.delay().get()

    assert json.loads(json.dumps(summary)) == summary
    assert summary["repriced"] == ["BTC", "ETH"]
    assert summary["prices"] == {"BTC": "98000.0000000000", "ETH": "3400.0000000000"}
    assert summary["stale"] == {}
    assert PriceQuote.objects.filter(refresh_id=summary["refresh_id"]).count() == 6
    assert current_prices()["ETH"].price == Decimal("3400")


def test_the_summary_names_stale_assets_with_their_reason(oracle):
    for fake in oracle[:2]:
        fake.fail("ticker", "http_500")

    summary = tasks.refresh_crypto_prices.delay().get()

    assert summary["repriced"] == []
    assert summary["stale"]["BTC"] == (
        "only 1 of 3 venues gave a fresh quote within 5% of the median; quorum is 2 "
        "(bitstamp-1: error (ExchangeNotAvailable); bitstamp-2: error (ExchangeNotAvailable))"
    )


@pytest.fixture
def eager_retries(monkeypatch):
    """Eager tasks that retry as a worker would, instead of raising ``Retry`` to the caller."""
    monkeypatch.setitem(tasks.refresh_crypto_prices.app.conf, "task_eager_propagates", False)


def test_a_lost_database_connection_is_retried_a_bounded_number_of_times(oracle, monkeypatch, eager_retries):
    calls = []
    real = tasks.crypto_prices_refresh

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) <= 2:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(tasks, "crypto_prices_refresh", flaky)
    summary = tasks.refresh_crypto_prices.delay().get()

    assert len(calls) == 3
    assert summary["repriced"] == ["BTC", "ETH"]


def test_retries_stop_after_two(monkeypatch, eager_retries):
    calls = []

    def down(**kwargs):
        calls.append(kwargs)
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(tasks, "crypto_prices_refresh", down)
    result = tasks.refresh_crypto_prices.delay()
    assert len(calls) == 3  # the first try and two retries
    assert result.failed()
    with pytest.raises(OperationalError):
        result.get()


def test_a_configuration_mistake_is_not_retried(settings, monkeypatch, eager_retries):
    settings.PRICE_QUORUM = 9
    calls = []
    real = tasks.crypto_prices_refresh

    def counted(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(tasks, "crypto_prices_refresh", counted)
    result = tasks.refresh_crypto_prices.delay()
    assert len(calls) == 1
    with pytest.raises(ImproperlyConfigured):
        result.get()


def test_the_task_follows_the_house_conventions():
    task = tasks.refresh_crypto_prices
    assert task.name == "collateral.refresh_crypto_prices"
    assert task.serializer == "json"
    assert task.max_retries == 2
    assert 0 < task.soft_time_limit < task.time_limit
    assert task.soft_time_limit > 20  # one venue timeout (at most 20 s) plus the writes
