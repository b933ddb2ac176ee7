"""The fake against the real venues: for every call the platform makes, the fake's raw answer has the
keys and JSON types of the answer ccxt recorded from Bitstamp and Kraken (``recorded/``, see its
README), and ccxt parses the recorded answers into exactly what the platform reads."""

from __future__ import annotations

import copy
import datetime
import json
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from collateral.oracle import _ticker_price, _ticker_time
from exchanges import exchange_client
from fake_exchange import FAKE_CREDENTIALS, FakeExchange, ccxt_client
from fake_exchange.markets import markets_for
from fake_exchange.venues import venue_named
from financing.liquidation.venues import SaleVenue, VenueOrder

RECORDED = Path(__file__).parent / "recorded"


@cache
def _file(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / name).read_text())


def recorded(venue: str, method: str, description: str) -> Any:
    """The raw answer ccxt recorded from the venue for this call (a fresh copy)."""
    [entry] = [e for e in _file(f"{venue}.json")["methods"][method] if e["description"] == description]
    return copy.deepcopy(entry["httpResponse"])


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively; a list's shape is the set of its items' shapes."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return ["list", *sorted({json.dumps(shape(item), sort_keys=True) for item in value})]
    return {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}[type(value)]


def by_id(mapping: dict[str, Any]) -> dict[str, Any]:
    """Kraken keys results by order id or pair: the one entry under a placeholder key."""
    [value] = mapping.values()
    return {"<id>": value}


class RawClient:
    """A real ccxt client of the fake, and the raw JSON of its last answer (as sent: ccxt edits the
    parsed copy it keeps)."""

    def __init__(self, fake: FakeExchange) -> None:
        self.ccxt = ccxt_client(fake.venue.name, base_url=fake.base_url, timeout_ms=5000)
        self.ccxt.enableLastHttpResponse = True

    @property
    def last_json_response(self) -> Any:
        return json.loads(self.ccxt.last_http_response)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ccxt, name)


raw_client = RawClient


# --- the fake's answers have the recorded shape ------------------------------------------------------


def test_bitstamp_ticker(fake_bitstamp):
    client = raw_client(fake_bitstamp)
    client.fetch_ticker("BTC/USD")
    assert shape(client.last_json_response) == shape(
        recorded("bitstamp", "fetchTicker", "public spot ticker")
    )


def kraken_body(body: dict[str, Any], *path: str) -> dict[str, Any]:
    """The body with the id-keyed mapping at ``path`` (under ``result``) reduced to one placeholder."""
    body = copy.deepcopy(body)
    holder = body["result"]
    for key in path[:-1]:
        holder = holder[key]
    if path:
        holder[path[-1]] = by_id(holder[path[-1]])
    else:
        body["result"] = by_id(holder)
    return body


def test_kraken_ticker(fake_kraken):
    client = raw_client(fake_kraken)
    client.fetch_ticker("BTC/USD")
    assert shape(kraken_body(client.last_json_response)) == shape(
        kraken_body(recorded("kraken", "fetchTicker", "public spot ticker"))
    )


def test_kraken_create_order(fake_kraken):
    client = raw_client(fake_kraken)
    client.create_order("BTC/USD", "market", "sell", "0.5", None, {"clientOrderId": "FS1-1-1"})
    assert shape(client.last_json_response) == shape(recorded("kraken", "createOrder", "create order"))


def test_kraken_fetch_order_of_an_open_limit_order(fake_kraken):
    client = raw_client(fake_kraken)
    fake_kraken.set_fill("never")
    order = client.create_order("BTC/USD", "limit", "sell", "0.5", "99000")
    client.fetch_order(order["id"], "BTC/USD")
    assert shape(kraken_body(client.last_json_response)) == shape(
        kraken_body(recorded("kraken", "fetchOrder", "fetch spot limit order"))
    )


def test_kraken_fetch_order_of_a_filled_market_order(fake_kraken):
    client = raw_client(fake_kraken)
    order = client.create_order("BTC/USD", "market", "sell", "0.5")
    client.fetch_order(order["id"], "BTC/USD")
    assert shape(kraken_body(client.last_json_response)) == shape(
        kraken_body(recorded("kraken", "fetchOrder", "closed market order"))
    )


def test_kraken_open_orders_by_client_order_id(fake_kraken):
    client = raw_client(fake_kraken)
    fake_kraken.set_fill("never")
    client.create_order("BTC/USD", "limit", "sell", "0.5", "99000", {"clientOrderId": "FS1-1-1"})
    client.fetch_open_orders("BTC/USD", params={"clientOrderId": "FS1-1-1"})
    assert shape(kraken_body(client.last_json_response, "open")) == shape(
        kraken_body(recorded("kraken", "fetchOpenOrders", "spot open order with clientOrderId"), "open")
    )


def test_kraken_closed_orders_by_client_order_id_and_cancel_order(fake_kraken):
    client = raw_client(fake_kraken)
    fake_kraken.set_fill("never")
    order = client.create_order("BTC/USD", "limit", "sell", "0.5", "99000", {"clientOrderId": "FS1-1-1"})
    client.cancel_order(order["id"], "BTC/USD")
    assert shape(client.last_json_response) == shape(
        recorded("kraken", "cancelOrder", "spot cancel order by client order id")
    )
    client.fetch_closed_orders("BTC/USD", params={"clientOrderId": "FS1-1-1"})
    assert shape(kraken_body(client.last_json_response, "closed")) == shape(
        kraken_body(
            recorded("kraken", "fetchClosedOrders", "spot closed orders with clientorderId"), "closed"
        )
    )


def test_the_shape_check_sees_a_number_sent_as_a_string_and_a_missing_key():
    real = recorded("kraken", "cancelOrder", "spot cancel order by client order id")
    assert shape({"error": [], "result": {"count": 1}}) != shape(real)
    assert shape({"error": [], "result": {}}) != shape(real)
    assert shape({"error": [], "result": {"count": "1", "pending": False}}) != shape(real)


# --- markets ------------------------------------------------------------------------------------


# The limits ccxt 4.5 still derives from the venue's market list (it no longer sets kraken's price.min).
COMPARED_LIMITS = {
    "bitstamp": [("cost", "min")],
    "kraken": [("amount", "min"), ("leverage", "min"), ("leverage", "max")],
}


@pytest.mark.parametrize("venue", ["bitstamp", "kraken"])
def test_markets_loaded_from_the_fake_have_the_recorded_precision_and_limits(venue, request):
    fake = request.getfixturevalue(f"fake_{venue}")
    client = exchange_client(venue, base_url=fake.base_url)
    client.load_markets()
    for symbol, real in _file("markets.json")[venue]["markets"].items():
        market = client.markets[symbol]
        assert market["id"] == real["id"]
        for part in ("amount", "price"):
            assert Decimal(market["precision"][part]) == Decimal(str(real["precision"][part])), (symbol, part)
        for kind, bound in COMPARED_LIMITS[venue]:
            parsed, value = market["limits"][kind][bound], real["limits"][kind][bound]
            assert Decimal(parsed) == Decimal(str(value)), (symbol, kind, bound)


def test_the_kraken_asset_pair_has_the_recorded_keys_and_kraken_types():
    """ccxt's stored market holds Kraken's integers as strings; Kraken's schema types them as integers,
    and its fee tiers as [volume, percent] numbers."""
    real = _file("markets.json")["kraken"]["markets"]["BTC/USD"]["info"]
    fake = venue_named("kraken").raw_markets()["XXBTZUSD"]
    assert set(fake) == set(real)
    assert (
        shape(fake["fees"])
        == shape(fake["fees_maker"])
        == ["list", '["list", "\\"integer\\"", "\\"number\\""]']
    )
    assert {key: fake[key] for key in ("altname", "wsname", "base", "quote", "ordermin", "tick_size")} == {
        key: real[key] for key in ("altname", "wsname", "base", "quote", "ordermin", "tick_size")
    }


# --- the fake serves the paths ccxt calls --------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "entry"),
    [
        (venue, entry)
        for venue in ("bitstamp", "kraken")
        for entry in _file("requests.json")[venue]["requests"]
    ],
    ids=lambda value: value if isinstance(value, str) else value["description"],
)
def test_the_fake_routes_the_recorded_request(venue, entry):
    expected = {
        "createOrder": "create_order",
        "fetchTicker": "ticker",
        "fetchOpenOrders": "list_orders",
        "fetchClosedOrders": "list_orders",
        "cancelOrder": "cancel_order",
    }[entry["method"]]
    path = urlsplit(entry["url"]).path
    route = venue_named(venue).route("POST" if "output" in entry else "GET", path)
    assert getattr(route, "endpoint", None) == expected


# --- ccxt parses the recorded answers into what the platform reads ---------------------------------


def replay(response: Any):
    """An implicit API method that answers with a recorded response instead of sending a request."""
    return lambda params=None, *args, **kwargs: copy.deepcopy(response)


def test_a_recorded_bitstamp_ticker_gives_the_oracle_its_price_and_time():
    client = exchange_client("bitstamp", markets=markets_for("bitstamp"))
    client.publicGetTickerPair = replay(recorded("bitstamp", "fetchTicker", "public spot ticker"))
    ticker = client.fetch_ticker("BTC/USD")
    assert _ticker_price(ticker) == Decimal("73285")
    assert _ticker_time(ticker) == datetime.datetime(2024, 3, 13, 11, 10, 41, tzinfo=datetime.UTC)


def test_a_recorded_kraken_ticker_gives_the_oracle_its_price_and_no_time():
    body = recorded("kraken", "fetchTicker", "public spot ticker")
    body["result"] = {"XXBTZUSD": body["result"]["XBTUSDT"]}  # the recorded ticker under our pair's id
    client = exchange_client("kraken", markets=markets_for("kraken"))
    client.publicGetTicker = replay(body)
    ticker = client.fetch_ticker("BTC/USD")
    assert _ticker_price(ticker) == Decimal("73380.60000")
    assert _ticker_time(ticker) is None  # the oracle uses the time it received the quote


@pytest.fixture
def kraken_sale_venue():
    """The platform's SaleVenue on kraken, its client answering with recorded responses (no network)."""
    venue = SaleVenue(
        {"name": "kraken", "exchange": "kraken", "markets": {"BTC": "BTC/USD"}, **FAKE_CREDENTIALS}
    )
    venue.client = exchange_client("kraken", markets=markets_for("kraken"), **FAKE_CREDENTIALS)
    return venue


def test_a_recorded_kraken_order_placement_gives_the_venue_order_id(kraken_sale_venue):
    kraken_sale_venue.client.privatePostAddOrder = replay(recorded("kraken", "createOrder", "create order"))
    placed = kraken_sale_venue.place("BTC", Decimal("0.5"), Decimal("96000"), "FS1-1-1")
    assert placed == VenueOrder("OL7LNO-R4SAD-6UINEU", "FS1-1-1", "open", Decimal(0), Decimal(0), Decimal(0))


def test_a_recorded_filled_kraken_order_gives_exact_fill_cost_and_fee(kraken_sale_venue):
    kraken_sale_venue.client.privatePostQueryOrders = replay(
        recorded("kraken", "fetchOrder", "closed market order")
    )
    order = kraken_sale_venue.fetch("BTC", "OGMZCL-KC6MC-ZRBGM6", "FS1-1-1")
    # no cl_ord_id on that order: ccxt reports its userref "0" as the client order id
    assert order == VenueOrder(
        "OGMZCL-KC6MC-ZRBGM6", "0", "closed", Decimal("0.10000000"), Decimal("7.105741"), Decimal("0.018475")
    )
    assert order.is_done


def on_our_pair(body: dict[str, Any], listing: str) -> dict[str, Any]:
    """The recorded orders moved from LTC/USDT to BTC/USD (ccxt drops orders of other markets)."""
    for order in body["result"][listing].values():
        order["descr"]["pair"] = "XBTUSD"
    return body


def test_recorded_kraken_order_lists_let_the_venue_find_an_order_by_its_client_id(kraken_sale_venue):
    client = kraken_sale_venue.client
    client.privatePostOpenOrders = replay(
        on_our_pair(recorded("kraken", "fetchOpenOrders", "spot open order with clientOrderId"), "open")
    )
    client.privatePostClosedOrders = replay(
        on_our_pair(
            recorded("kraken", "fetchClosedOrders", "spot closed orders with clientorderId"), "closed"
        )
    )
    assert kraken_sale_venue.find("BTC", "123") == VenueOrder(
        "O2F2HY-QIPHF-4UCMSW", "123", "open", Decimal("0.00000000"), Decimal("0.000000"), Decimal("0.000000")
    )

    client.privatePostOpenOrders = replay({"error": [], "result": {"open": {}}})
    found = kraken_sale_venue.find("BTC", "123")
    assert (found.id, found.client_order_id, found.status, found.is_done) == (
        "O2F2HY-QIPHF-4UCMSW",
        "123",
        "canceled",
        True,
    )
    assert kraken_sale_venue.find("BTC", "456") is None


def test_a_recorded_kraken_cancel_is_accepted(kraken_sale_venue):
    calls = []
    answer = recorded("kraken", "cancelOrder", "spot cancel order by client order id")
    kraken_sale_venue.client.privatePostCancelOrder = lambda params=None: calls.append(params) or answer
    kraken_sale_venue.cancel("BTC", "O45M52-BFD55-YXKQOU")
    assert [call["txid"] for call in calls] == ["O45M52-BFD55-YXKQOU"]
