"""The venue settings: PRICE_VENUES and FORCED_SALE_VENUE are checked, and a mistake is refused with the
reason instead of pricing from, or selling at, somewhere other than the broker believes."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from collateral.models import PriceQuote
from exchanges import PriceVenue, SaleVenueConfig, price_venues, sale_venue_config
from exchanges.venues import MARKET_MAX_LENGTH, VENUE_NAME_MAX_LENGTH
from financing.models import SaleOrder

GOOD = {"name": "bitstamp-1", "exchange": "bitstamp", "markets": {"BTC": "BTC/USD"}}
SALE = {"name": "bitstamp-main", "exchange": "kraken", "markets": {"BTC": "BTC/USD"}}


def refused(message: str):
    return pytest.raises(ImproperlyConfigured, match=re.escape(message))


def test_the_default_venues_are_the_demo_fake_venues_on_loopback_ports():
    assert price_venues() == [
        PriceVenue(
            "bitstamp-1", "bitstamp", {"BTC": "BTC/USD", "ETH": "ETH/USD"}, "http://127.0.0.1:8801/api", 5000
        ),
        PriceVenue(
            "bitstamp-2", "bitstamp", {"BTC": "BTC/USD", "ETH": "ETH/USD"}, "http://127.0.0.1:8802/api", 5000
        ),
        PriceVenue("kraken-1", "kraken", {"BTC": "BTC/USD", "ETH": "ETH/USD"}, "http://127.0.0.1:8803", 5000),
    ]
    assert sale_venue_config() == SaleVenueConfig(
        "bitstamp-1",
        "bitstamp",
        {"BTC": "BTC/USD", "ETH": "ETH/USD"},
        "limit",
        "http://127.0.0.1:8801/api",
        5000,
        api_key="demo-key",
        secret="ZGVtby1zZWNyZXQ=",
    )


def test_a_production_venue_has_no_base_url_and_talks_to_the_real_api():
    [venue] = price_venues([{**GOOD, "timeout_ms": 3000, "markets": {"btc": "BTC/USD"}}])
    assert (venue.base_url, venue.timeout_ms, venue.address, venue.markets) == (
        "",
        3000,
        "the real bitstamp API",
        {"BTC": "BTC/USD"},
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "PRICE_VENUES must be a non-empty JSON list of venues."),
        ({"name": "x"}, "PRICE_VENUES must be a non-empty JSON list of venues."),
        (["bitstamp"], "PRICE_VENUES item 1 must be an object with name, exchange and markets."),
        (
            [{**GOOD, "exchange": "binance"}],
            "PRICE_VENUES item 1 (bitstamp-1): exchange must be one of bitstamp, kraken, not 'binance'.",
        ),
        (
            [{**GOOD, "base_url": "https://www.bitstamp.net/api"}],
            "PRICE_VENUES item 1 (bitstamp-1): base_url is only for the local fake exchange and must be a "
            "loopback address, not 'https://www.bitstamp.net/api'; leave it out to use the real venue.",
        ),
        ([GOOD, GOOD], "PRICE_VENUES item 2: the venue name 'bitstamp-1' is used twice."),
        (
            [{**GOOD, "markets": {}}],
            "PRICE_VENUES item 1 (bitstamp-1): markets must map asset symbols to markets.",
        ),
        (
            [{**GOOD, "markets": {"BTC": "BTCUSD"}}],
            "PRICE_VENUES item 1 (bitstamp-1): the market for BTC must look like 'BTC/USD', not 'BTCUSD'.",
        ),
        (
            [{**GOOD, "timeout_ms": 120_000}],
            "PRICE_VENUES item 1 (bitstamp-1): timeout_ms must be whole milliseconds between 100 and 20000.",
        ),
        ([{**GOOD, "timeout_ms": 2.5}], "timeout_ms must be whole milliseconds"),
        ([{**GOOD, "timeout_ms": True}], "timeout_ms must be whole milliseconds"),
        ([{**GOOD, "url": "x"}], "PRICE_VENUES item 1 has unknown keys: url."),
        ([{**GOOD, "name": ""}], "PRICE_VENUES item 1 needs a name of at most 50 characters."),
        ([{**GOOD, "name": "x" * 51}], "PRICE_VENUES item 1 needs a name of at most 50 characters."),
    ],
)
def test_a_bad_price_venue_is_refused_with_the_reason(config, message):
    with refused(message):
        price_venues(config)


def test_a_production_sale_venue_keeps_its_credentials_out_of_its_repr():
    venue = sale_venue_config({**SALE, "api_key": "key-1", "secret": "c2VjcmV0", "order_type": "market"})
    assert (venue.exchange, venue.base_url, venue.order_type, venue.timeout_ms) == (
        "kraken",
        "",
        "market",
        5000,
    )
    assert (venue.api_key, venue.secret) == ("key-1", "c2VjcmV0")
    assert "key-1" not in repr(venue)
    assert "c2VjcmV0" not in repr(venue)
    assert venue.market("BTC") == "BTC/USD"
    with refused("FORCED_SALE_VENUE has no market for ETH."):
        venue.market("ETH")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([SALE], "FORCED_SALE_VENUE must be a JSON object with name, exchange and markets."),
        ({"name": "x"}, "FORCED_SALE_VENUE needs exchange, markets."),
        ({}, "FORCED_SALE_VENUE needs exchange, markets, name."),
        ({**SALE, "order_type": "stop"}, "FORCED_SALE_VENUE order_type is limit or market."),
        (
            {**SALE, "exchange": "binance"},
            "FORCED_SALE_VENUE: exchange must be one of bitstamp, kraken, not 'binance'.",
        ),
        (
            {**SALE, "base_url": "http://10.0.0.5:8801"},
            "FORCED_SALE_VENUE: base_url is only for the local fake exchange and must be a loopback address, "
            "not 'http://10.0.0.5:8801'; leave it out to use the real venue.",
        ),
        ({**SALE, "markets": ["BTC/USD"]}, "FORCED_SALE_VENUE: markets must map asset symbols to markets."),
        (
            {**SALE, "markets": {"BTC": "XBTUSD"}},
            "FORCED_SALE_VENUE: the market for BTC must look like 'BTC/USD', not 'XBTUSD'.",
        ),
        ({**SALE, "timeout_ms": "5000"}, "FORCED_SALE_VENUE: timeout_ms must be whole milliseconds"),
        ({**SALE, "apikey": "x"}, "FORCED_SALE_VENUE has unknown keys: apikey."),
        ({**SALE, "name": " "}, "FORCED_SALE_VENUE needs a name of at most 50 characters."),
    ],
)
def test_a_bad_sale_venue_is_refused_with_the_reason(config, message):
    with refused(message):
        sale_venue_config(config)


def test_the_limits_are_those_of_the_records_that_keep_venue_names_and_markets():
    assert PriceQuote._meta.get_field("venue").max_length == VENUE_NAME_MAX_LENGTH
    assert PriceQuote._meta.get_field("market").max_length == MARKET_MAX_LENGTH
    assert SaleOrder._meta.get_field("venue").max_length >= VENUE_NAME_MAX_LENGTH
