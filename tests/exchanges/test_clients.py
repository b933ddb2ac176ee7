"""The adapter's ccxt clients: the real venue by default, a fake venue only on loopback, exact numbers,
and markets loaded once per venue and process."""

from __future__ import annotations

import threading

import ccxt
import pytest

from exchanges import exchange_client, markets_forget
from fake_exchange.clients import FAKE_SECRET
from fake_exchange.markets import markets_for
from fake_exchange.testing import running_fake_exchange


@pytest.fixture(params=["bitstamp", "kraken"])
def fake(request):
    with running_fake_exchange(request.param) as fake:
        yield fake


@pytest.mark.parametrize(
    ("exchange", "api"), [("bitstamp", "https://www.bitstamp.net/api"), ("kraken", "https://api.kraken.com")]
)
def test_without_a_base_url_the_client_is_ccxts_own_for_the_real_venue(exchange, api):
    client = exchange_client(exchange, api_key="key", secret="c2VjcmV0", timeout_ms=3000)
    assert client.urls["api"]["public"] == api
    assert (client.id, client.number, client.timeout, client.enableRateLimit) == (exchange, str, 3000, True)
    assert (client.apiKey, client.secret) == ("key", "c2VjcmV0")
    assert client.markets is None  # nothing fetched yet


@pytest.mark.parametrize(
    "base_url",
    [
        "https://www.bitstamp.net/api",
        "http://10.0.0.5:8801/api",
        "http://localhost.example.com:8801",
        "http://127.0.0.1.nip.io:8801",
        "",
    ],
)
def test_a_base_url_off_this_machine_is_refused(base_url):
    with pytest.raises(ValueError, match="is not a loopback address"):
        exchange_client("bitstamp", base_url=base_url)


def test_an_unsupported_exchange_is_refused():
    with pytest.raises(ValueError, match="unknown exchange 'binance'; one of bitstamp, kraken"):
        exchange_client("binance")


def test_a_loopback_client_talks_to_the_fake_without_rate_limit_or_proxy(fake, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: a proxy would fail
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = exchange_client(fake.venue.name, base_url=fake.base_url, timeout_ms=2000)
    assert client.urls["api"] == {"public": fake.base_url, "private": fake.base_url}
    assert (client.enableRateLimit, client.session.trust_env) == (False, False)

    ticker = client.fetch_ticker("BTC/USD")

    assert ticker["last"] == "98000"  # a string: number = str
    assert {request.endpoint for request in fake.requests()} == {"markets", "ticker"}


def test_preset_markets_need_no_request(fake):
    client = exchange_client(fake.venue.name, base_url=fake.base_url, markets=markets_for(fake.venue.name))
    client.fetch_ticker("ETH/USD")
    assert [request.endpoint for request in fake.requests()] == ["ticker"]


def test_markets_are_loaded_once_for_every_client_of_a_venue_even_when_asked_at_once(fake):
    loads = {"bitstamp": 1, "kraken": 2}[fake.venue.name]  # kraken: Assets, then AssetPairs
    clients = [exchange_client(fake.venue.name, base_url=fake.base_url) for _ in range(6)]
    fake.fail("markets", "delay", seconds="0.3")  # the first load is still running when the others ask
    threads = [threading.Thread(target=client.load_markets) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert len(fake.requests("markets")) == loads
    assert all(sorted(client.symbols) == ["BTC/USD", "ETH/USD"] for client in clients)
    exchange_client(fake.venue.name, base_url=fake.base_url).fetch_ticker("BTC/USD")
    assert len(fake.requests("markets")) == loads


def test_a_failed_load_is_shared_by_those_waiting_and_the_next_client_tries_again(fake):
    fake.fail("markets", "http_500", times=1)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange_client(fake.venue.name, base_url=fake.base_url).load_markets()

    client = exchange_client(fake.venue.name, base_url=fake.base_url)
    assert client.fetch_ticker("BTC/USD")["last"] == "98000"


def test_forgetting_the_markets_of_a_venue_makes_the_next_client_load_them(fake):
    exchange_client(fake.venue.name, base_url=fake.base_url).load_markets()
    before = len(fake.requests("markets"))
    markets_forget(fake.base_url)
    exchange_client(fake.venue.name, base_url=fake.base_url).load_markets()
    assert len(fake.requests("markets")) == 2 * before


def test_kraken_order_descriptions_resolve_with_preset_markets():
    """Kraken names the pair of an order by its altname (XBTUSD); preset markets must index it too."""
    with running_fake_exchange("kraken") as fake:
        client = exchange_client(
            "kraken", base_url=fake.base_url, api_key="key", secret=FAKE_SECRET, markets=markets_for("kraken")
        )
        order = client.create_order("BTC/USD", "market", "sell", "0.5", None, {"clientOrderId": "sale-1"})
    assert order["symbol"] == "BTC/USD"
