"""Each failure mode surfaces in a real ccxt client as the exception class the real failure raises."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from decimal import Decimal

import ccxt
import pytest

from fake_exchange import ccxt_client


def test_http_500_raises_exchange_not_available(fake, client_for):
    fake.fail("ticker", "http_500")
    client = client_for(fake)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ticker("BTC/USD")
    # ExchangeNotAvailable is a NetworkError: ccxt treats a 500 as retryable.
    assert issubclass(ccxt.ExchangeNotAvailable, ccxt.NetworkError)
    fake.clear_failures()
    assert client.fetch_ticker("BTC/USD")["last"] == "98000"


def test_a_failure_can_hit_only_the_first_requests(fake, client_for):
    fake.fail("ticker", "http_500", times=2)
    client = client_for(fake)
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            client.fetch_ticker("BTC/USD")
    assert client.fetch_ticker("BTC/USD")["last"] == "98000"
    assert len(fake.requests("ticker")) == 3


def test_a_failure_on_one_endpoint_leaves_the_others_alone(fake, client_for):
    fake.fail("create_order", "http_500")
    client = client_for(fake)
    assert client.fetch_ticker("BTC/USD")["last"] == "98000"
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order("BTC/USD", "market", "sell", "0.1")
    assert fake.orders() == []


def test_the_wildcard_endpoint_fails_everything(fake, client_for):
    fake.fail("*", "http_500")
    client = client_for(fake)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ticker("BTC/USD")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_balance()


def test_a_delay_longer_than_the_timeout_raises_request_timeout(fake, client_for):
    fake.fail("ticker", "delay", seconds="2", times=1)
    client = client_for(fake, timeout_ms=300)
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        client.fetch_ticker("BTC/USD")
    assert time.monotonic() - started < 1.5
    # The delayed request still sleeps in its own thread; the venue keeps answering others.
    assert client.fetch_ticker("BTC/USD")["last"] == "98000"


def test_a_delay_shorter_than_the_timeout_only_slows_the_answer(fake, client_for):
    fake.fail("ticker", "delay", seconds="0.2")
    client = client_for(fake, timeout_ms=2_000)
    started = time.monotonic()
    assert client.fetch_ticker("BTC/USD")["last"] == "98000"
    assert time.monotonic() - started >= 0.2


def test_rejection_raises_invalid_order(fake, client_for):
    fake.fail("create_order", "reject")
    with pytest.raises(ccxt.InvalidOrder):
        client_for(fake).create_order("BTC/USD", "market", "sell", "0.1")
    assert fake.orders() == []


def test_a_custom_rejection_message_is_passed_through(fake_bitstamp, client_for):
    fake_bitstamp.fail("create_order", "reject", message="Price is more than 20% above market price.")
    with pytest.raises(ccxt.InvalidOrder, match="Price is more than 20%"):
        client_for(fake_bitstamp).create_order("BTC/USD", "limit", "sell", "0.1", "150000")


def test_forced_insufficient_funds_raises_insufficient_funds(fake, client_for):
    fake.fail("create_order", "insufficient_funds")
    with pytest.raises(ccxt.InsufficientFunds):
        client_for(fake).create_order("BTC/USD", "market", "sell", "0.1")
    assert fake.orders() == []


def test_selling_more_than_the_balance_raises_insufficient_funds(fake, client_for):
    fake.set_balance("BTC", "0.5")
    client = client_for(fake)
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order("BTC/USD", "market", "sell", "0.50000001")
    order = client.create_order("BTC/USD", "market", "sell", "0.5")
    assert order["id"]
    assert Decimal(client.fetch_balance()["BTC"]["total"]) == Decimal("0")


def test_unavailable_raises_exchange_not_available(fake, client_for):
    fake.fail("create_order", "unavailable")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client_for(fake).create_order("BTC/USD", "market", "sell", "0.1")


def test_private_endpoints_require_the_auth_headers(fake):
    """ccxt never sends a private call without credentials, so this one is raw HTTP; the answer is
    the venue's auth error, which ccxt's own error handler maps to AuthenticationError."""
    path = "/api/v2/account_balances/" if fake.venue.name == "bitstamp" else "/0/private/Balance"
    request = urllib.request.Request(fake.root_url + path, data=b"nonce=1", method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    client = ccxt_client(fake.venue.name, base_url=fake.base_url)
    with pytest.raises(ccxt.AuthenticationError):
        client.handle_errors(status, "", fake.root_url + path, "POST", {}, body, json.loads(body), {}, "")
