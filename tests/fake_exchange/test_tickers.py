"""Prices through real ccxt clients: exact strings, changes, staleness, several venues at once."""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

import ccxt
import pytest

from fake_exchange import ccxt_client, markets_for


def test_ticker_returns_the_set_price_as_an_exact_string(fake, client_for):
    fake.set_price("BTC/USD", "98123.45")
    ticker = client_for(fake).fetch_ticker("BTC/USD")
    assert ticker["symbol"] == "BTC/USD"
    assert ticker["last"] == "98123.45"  # number = str: no float ever touched it
    assert Decimal(ticker["last"]) == Decimal("98123.45")
    assert Decimal(ticker["bid"]) == Decimal(ticker["ask"]) == Decimal("98123.45")


def test_default_prices_are_seeded(fake, client_for):
    client = client_for(fake)
    assert Decimal(client.fetch_ticker("BTC/USD")["last"]) == Decimal("98000")
    assert Decimal(client.fetch_ticker("ETH/USD")["last"]) == Decimal("3400")


def test_price_changes_are_seen_by_the_next_fetch(fake, client_for):
    client = client_for(fake)
    fake.set_price("ETH/USD", "3400.10")
    assert client.fetch_ticker("ETH/USD")["last"] == "3400.10"
    fake.set_price("ETH/USD", Decimal("2999.99"))
    assert client.fetch_ticker("ETH/USD")["last"] == "2999.99"


def test_the_ticker_request_uses_ccxts_own_path(fake_bitstamp, fake_kraken):
    ccxt_client("bitstamp", base_url=fake_bitstamp.base_url).fetch_ticker("BTC/USD")
    ccxt_client("kraken", base_url=fake_kraken.base_url).fetch_ticker("BTC/USD")
    [bitstamp] = fake_bitstamp.requests("ticker")
    assert (bitstamp.method, bitstamp.path) == ("GET", "/api/v2/ticker/btcusd/")
    [kraken] = fake_kraken.requests("ticker")
    # ccxt asks for the canonical pair id, not the XBTUSD altname (the fake answers both).
    assert (kraken.method, kraken.path, kraken.params) == ("GET", "/0/public/Ticker", {"pair": "XXBTZUSD"})


def test_bitstamp_ticker_timestamp_is_fresh_unless_made_stale(fake_bitstamp, client_for):
    client = client_for(fake_bitstamp)
    now_ms = time.time() * 1000
    assert abs(client.fetch_ticker("BTC/USD")["timestamp"] - now_ms) < 2_000

    fake_bitstamp.set_ticker_age(300)
    stale = client.fetch_ticker("BTC/USD")
    age_ms = time.time() * 1000 - stale["timestamp"]
    assert 299_000 <= age_ms <= 302_000


def test_kraken_ticker_has_no_timestamp(fake_kraken, client_for):
    """Kraken's ticker carries no time at all: a staleness guard must use the time it received it."""
    fake_kraken.set_ticker_age(300)
    ticker = client_for(fake_kraken).fetch_ticker("BTC/USD")
    assert ticker["timestamp"] is None
    assert ticker["last"] == "98000"


def test_three_venues_run_at_once_for_a_median(fake_venues):
    assert len({fake.port for fake in fake_venues}) == 3
    assert [fake.name for fake in fake_venues] == ["bitstamp-1", "bitstamp-2", "kraken-1"]
    for fake, price in zip(fake_venues, ["97000", "98500.5", "98000"], strict=True):
        fake.set_price("BTC/USD", price)
    quotes = [
        Decimal(ccxt_client(fake.venue.name, base_url=fake.base_url).fetch_ticker("BTC/USD")["last"])
        for fake in fake_venues
    ]
    assert quotes == [Decimal("97000"), Decimal("98500.5"), Decimal("98000")]
    assert statistics.median(quotes) == Decimal("98000")


@pytest.mark.parametrize("venue", ["bitstamp", "kraken"])
def test_preset_markets_equal_what_load_markets_builds(venue, request):
    """The helper's market dicts are what ccxt itself builds from the fake's markets endpoint."""
    fake = request.getfixturevalue(f"fake_{venue}")
    loaded = ccxt_client(venue, base_url=fake.base_url, preset_markets=False)
    loaded.load_markets()
    preset = {market["symbol"]: market for market in markets_for(venue)}
    assert sorted(preset) == ["BTC/USD", "ETH/USD"]
    for symbol, market in preset.items():
        other = loaded.markets[symbol]
        for key in ("id", "symbol", "base", "quote", "baseId", "quoteId", "precision", "spot", "type"):
            assert market[key] == other[key], (symbol, key)


def test_a_client_without_base_url_points_at_the_real_venue():
    """Production passes no base_url: nothing is patched (and nothing is fetched here)."""
    client = ccxt_client("bitstamp")
    assert client.urls["api"]["public"] == "https://www.bitstamp.net/api"
    assert client.markets is None
    assert client.number is str
    assert client.enableRateLimit is True


def test_unknown_symbol_is_refused_by_ccxt_before_any_request(fake_bitstamp, client_for):
    with pytest.raises(ccxt.BadSymbol):
        client_for(fake_bitstamp).fetch_ticker("DOGE/USD")
    assert fake_bitstamp.requests() == []
