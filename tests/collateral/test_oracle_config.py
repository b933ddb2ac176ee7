"""The oracle's settings: a mistake stops the refresh with a clear message, never a quiet guess."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from collateral.oracle import Venue, oracle_rules, price_venues

GOOD = {"name": "bitstamp-1", "exchange": "bitstamp", "markets": {"BTC": "BTC/USD"}}


def test_the_default_venues_are_the_demo_fake_venues_on_loopback_ports():
    assert price_venues() == [
        Venue(
            "bitstamp-1", "bitstamp", {"BTC": "BTC/USD", "ETH": "ETH/USD"}, "http://127.0.0.1:8801/api", 5000
        ),
        Venue(
            "bitstamp-2", "bitstamp", {"BTC": "BTC/USD", "ETH": "ETH/USD"}, "http://127.0.0.1:8802/api", 5000
        ),
        Venue("kraken-1", "kraken", {"BTC": "BTC/USD", "ETH": "ETH/USD"}, "http://127.0.0.1:8803", 5000),
    ]
    rules = oracle_rules(price_venues())
    assert (rules.staleness.total_seconds(), rules.band, rules.quorum) == (60, Decimal("0.05"), 2)


def test_a_production_venue_has_no_base_url_and_talks_to_the_real_api():
    [venue] = price_venues([{**GOOD, "timeout_ms": 3000}])
    assert (venue.base_url, venue.timeout_ms, venue.address) == ("", 3000, "the real bitstamp API")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "PRICE_VENUES must be a non-empty JSON list of venues."),
        ([{**GOOD, "exchange": "binance"}], "exchange must be one of bitstamp, kraken, not 'binance'"),
        ([{**GOOD, "base_url": "https://www.bitstamp.net/api"}], "must be a loopback address"),
        ([GOOD, GOOD], "the venue name 'bitstamp-1' is used twice"),
        ([{**GOOD, "markets": {}}], "markets must map asset symbols to markets"),
        ([{**GOOD, "markets": {"BTC": "BTCUSD"}}], "the market for BTC must look like 'BTC/USD'"),
        ([{**GOOD, "timeout_ms": 120_000}], "timeout_ms must be whole milliseconds between 100 and 20000"),
        ([{**GOOD, "timeout_ms": 2.5}], "timeout_ms must be whole milliseconds"),
        ([{**GOOD, "url": "x"}], "unknown keys: url"),
        ([{**GOOD, "name": ""}], "needs a name"),
    ],
)
def test_a_bad_venue_is_refused_with_the_reason(config, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        price_venues(config)


def test_a_quorum_larger_than_the_venues_would_make_every_price_stale(settings):
    settings.PRICE_QUORUM = 4
    with pytest.raises(ImproperlyConfigured, match="PRICE_QUORUM is 4 but only 3 venue"):
        oracle_rules(price_venues())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PRICE_BAND", Decimal("1.5"), "PRICE_BAND must be a fraction between 0 and 1"),
        ("PRICE_BAND", Decimal("0"), "PRICE_BAND must be a fraction between 0 and 1"),
        ("PRICE_QUORUM", 0, "PRICE_QUORUM must be a whole number of at least 1"),
        ("PRICE_STALENESS_SECONDS", 0, "PRICE_STALENESS_SECONDS must be a whole number"),
    ],
)
def test_bad_rules_are_refused(settings, name, value, message):
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        oracle_rules()
