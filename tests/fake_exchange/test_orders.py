"""Orders through real ccxt clients: client order ids and exactly-once, fills (full, partial, never, at
a forced price), fees, cancels, balances."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

D = Decimal


def sell(client, amount="0.5", client_order_id=None, type="market", price=None):
    params = {} if client_order_id is None else {"clientOrderId": client_order_id}
    return client.create_order("BTC/USD", type, "sell", amount, price, params)


# ---------------------------------------------------------------- request paths
def test_bitstamp_order_calls_use_ccxts_paths(fake_bitstamp, client_for):
    client = client_for(fake_bitstamp)
    fake_bitstamp.set_fill("never")
    market = sell(client, client_order_id="sale-1")
    limit = sell(client, type="limit", price="99000")
    client.fetch_order(market["id"], "BTC/USD")
    client.cancel_order(limit["id"], "BTC/USD")
    client.fetch_balance()
    calls = [(r.method, r.path, r.endpoint) for r in fake_bitstamp.requests()]
    assert calls == [
        ("POST", "/api/v2/sell/market/btcusd/", "create_order"),
        ("POST", "/api/v2/sell/btcusd/", "create_order"),
        ("POST", "/api/v2/order_status/", "fetch_order"),
        ("POST", "/api/v2/cancel_order/", "cancel_order"),
        ("POST", "/api/v2/account_balances/", "balance"),
    ]
    placed = fake_bitstamp.requests("create_order")
    assert placed[0].params == {"amount": "0.5", "client_order_id": "sale-1"}
    assert placed[1].params == {"amount": "0.5", "price": "99000"}


def test_kraken_order_calls_use_ccxts_paths(fake_kraken, client_for):
    client = client_for(fake_kraken)
    fake_kraken.set_fill("never")
    order = sell(client, client_order_id="sale-1")
    client.fetch_order(order["id"])
    client.cancel_order(order["id"])
    client.fetch_balance()
    calls = [(r.method, r.path) for r in fake_kraken.requests()]
    assert calls == [
        ("POST", "/0/private/AddOrder"),
        ("POST", "/0/private/QueryOrders"),
        ("POST", "/0/private/CancelOrder"),
        ("POST", "/0/private/BalanceEx"),  # not /Balance
    ]
    params = fake_kraken.requests("create_order")[0].params
    # ccxt maps the unified clientOrderId to kraken's cl_ord_id.
    assert {k: params[k] for k in ("pair", "type", "ordertype", "volume", "cl_ord_id")} == {
        "pair": "XXBTZUSD",
        "type": "sell",
        "ordertype": "market",
        "volume": "0.5",
        "cl_ord_id": "sale-1",
    }


# ---------------------------------------------------------------- full fills
def test_market_sell_fills_at_the_current_price(fake, client_for):
    fake.set_price("BTC/USD", "98123.5")
    client = client_for(fake)
    placed = sell(client, "0.5", client_order_id="sale-1")
    order = client.fetch_order(placed["id"], "BTC/USD")
    assert order["status"] == "closed"
    assert order["clientOrderId"] == "sale-1"
    assert order["side"] == "sell"
    assert order["symbol"] == "BTC/USD"
    assert D(order["filled"]) == D("0.5")
    assert D(order["remaining"]) == D("0")
    assert D(order["average"]) == D("98123.5")
    assert D(order["cost"]) == D("49061.75")


def test_fill_at_a_forced_price(fake, client_for):
    """To test a price-deviation guard: the venue fills far from its own ticker."""
    fake.set_fill("full", price="90000")
    client = client_for(fake)
    order = client.fetch_order(sell(client, "1")["id"], "BTC/USD")
    assert D(order["average"]) == D("90000")
    assert D(client.fetch_ticker("BTC/USD")["last"]) == D("98000")


def test_fee_is_charged_on_the_fill_in_the_quote_currency(fake, client_for):
    fake.set_fee_rate("0.0025")
    client = client_for(fake)
    order = client.fetch_order(sell(client, "0.5")["id"], "BTC/USD")
    assert order["fee"]["currency"] == "USD"
    assert D(order["fee"]["cost"]) == D("122.5")  # 0.5 * 98000 * 0.0025
    balance = client.fetch_balance()
    assert D(balance["USD"]["total"]) == D("10000000") + D("49000") - D("122.5")
    assert D(balance["BTC"]["total"]) == D("99.5")


# ---------------------------------------------------------------- exactly once
def test_retrying_a_sale_with_the_same_client_order_id_places_one_order(fake, client_for):
    client = client_for(fake)
    first = sell(client, "0.5", client_order_id="sale-42")
    with pytest.raises(ccxt.ExchangeError, match=r"(?i)duplicate") as raised:
        sell(client, "0.5", client_order_id="sale-42")
    # Not an InvalidOrder or NetworkError subclass: ccxt's maps do not know the message.
    assert type(raised.value) is ccxt.ExchangeError
    assert len(fake.requests("create_order")) == 2  # both attempts reached the venue...
    assert [order.id for order in fake.orders()] == [first["id"]]  # ...one order exists
    assert D(client.fetch_balance()["BTC"]["total"]) == D("99.5")


def test_a_lost_response_then_retry_still_sells_once(fake_bitstamp, client_for):
    """The case client order ids exist for: the order is placed but the answer never arrives."""
    fake_bitstamp.fail("create_order", "lost_response", seconds="2", times=1)
    client = client_for(fake_bitstamp, timeout_ms=300)
    with pytest.raises(ccxt.RequestTimeout):
        sell(client, "0.5", client_order_id="sale-7")
    assert len(fake_bitstamp.orders()) == 1  # it happened all the same
    with pytest.raises(ccxt.ExchangeError, match=r"(?i)duplicate"):
        sell(client, "0.5", client_order_id="sale-7")
    # Recovery: look the order up by its client order id (bitstamp's order_status accepts it).
    found = client.fetch_order(None, "BTC/USD", {"client_order_id": "sale-7"})
    assert found["status"] == "closed"
    assert D(found["filled"]) == D("0.5")
    assert fake_bitstamp.requests("fetch_order")[-1].params == {"client_order_id": "sale-7"}
    assert len(fake_bitstamp.orders()) == 1


def test_kraken_recovery_after_a_lost_response_finds_the_order_by_cl_ord_id(fake_kraken, client_for):
    """Kraken's fetch_order cannot look up by client id alone (ccxt needs the txid, and sends the client
    id as ``userref``), so recovery lists orders filtered by ``cl_ord_id``. Do it *before* retrying:
    Kraken only refuses a cl_ord_id while the first order is open (policy ``reject_open``), so a retry
    after a filled market order would sell twice."""
    fake_kraken.set_duplicate_policy("reject_open")
    fake_kraken.fail("create_order", "lost_response", seconds="2", times=1)
    client = client_for(fake_kraken, timeout_ms=300)
    with pytest.raises(ccxt.RequestTimeout):
        sell(client, "0.5", client_order_id="sale-7")
    [found] = client.fetch_closed_orders(params={"clientOrderId": "sale-7"})
    assert (found["clientOrderId"], found["status"], D(found["filled"])) == ("sale-7", "closed", D("0.5"))
    assert fake_kraken.requests("list_orders")[-1].params["cl_ord_id"] == "sale-7"
    assert client.fetch_open_orders(params={"clientOrderId": "sale-7"}) == []
    sell(client, "0.5", client_order_id="sale-7")  # what a blind retry would do on real Kraken
    assert len(fake_kraken.orders()) == 2


def test_return_existing_policy_answers_with_the_first_order(fake, client_for):
    fake.set_duplicate_policy("return_existing")
    client = client_for(fake)
    first = sell(client, "0.5", client_order_id="sale-1")
    again = sell(client, "0.5", client_order_id="sale-1")
    assert again["id"] == first["id"]
    assert len(fake.orders()) == 1


def test_allow_policy_models_a_venue_without_uniqueness(fake, client_for):
    """Bitstamp documents no uniqueness check on client_order_id: the platform must not rely on it."""
    fake.set_duplicate_policy("allow")
    client = client_for(fake)
    sell(client, "0.5", client_order_id="sale-1")
    sell(client, "0.5", client_order_id="sale-1")
    assert len(fake.orders()) == 2


def test_reject_open_policy_frees_the_id_once_the_order_is_done(fake_kraken, client_for):
    """Kraken enforces cl_ord_id uniqueness among open orders only."""
    fake_kraken.set_duplicate_policy("reject_open")
    fake_kraken.set_fill("never")
    client = client_for(fake_kraken)
    first = sell(client, "0.5", client_order_id="sale-1")
    with pytest.raises(ccxt.ExchangeError):
        sell(client, "0.5", client_order_id="sale-1")
    fake_kraken.set_fill("full")
    assert client.fetch_order(first["id"])["status"] == "closed"
    sell(client, "0.5", client_order_id="sale-1")
    assert len(fake_kraken.orders()) == 2


# ---------------------------------------------------------------- partial fills
def test_bitstamp_partial_fill_progresses_across_polls(fake_bitstamp, client_for):
    fake_bitstamp.set_fill("partial", fraction="0.4")
    fake_bitstamp.set_fee_rate("0.001")
    client = client_for(fake_bitstamp)
    order_id = sell(client, "0.5", client_order_id="sale-1")["id"]
    seen = []
    for _ in range(3):
        order = client.fetch_order(order_id, "BTC/USD")
        seen.append(
            (order["status"], D(order["filled"]), D(order["info"]["amount_remaining"]), D(order["average"]))
        )
        fake_bitstamp.set_price("BTC/USD", "99000")  # later slices fill at the new price
    assert seen == [
        ("open", D("0.2"), D("0.3"), D("98000")),
        ("open", D("0.4"), D("0.1"), D("98500")),
        ("closed", D("0.5"), D("0"), D("98600")),  # (0.2*98000 + 0.3*99000) / 0.5
    ]
    # Bitstamp's order_status has no original amount, so ccxt cannot compute `remaining` (or `amount`)
    # while the order is open: read info['amount_remaining'].
    fake_bitstamp.set_fill("never")
    open_order = client.fetch_order(sell(client, "1")["id"], "BTC/USD")
    assert open_order["remaining"] is None
    assert open_order["amount"] is None
    assert D(order["fee"]["cost"]) == D("0.2") * D("98000") * D("0.001") + D("0.3") * D("99000") * D("0.001")


def test_kraken_partial_fill_progresses_across_polls(fake_kraken, client_for):
    fake_kraken.set_fill("partial", fraction="0.25")
    client = client_for(fake_kraken)
    order_id = sell(client, "2", client_order_id="sale-1")["id"]
    seen = []
    for _ in range(4):
        order = client.fetch_order(order_id)
        seen.append((order["status"], D(order["filled"]), D(order["remaining"]), D(order["average"])))
    assert seen == [
        ("open", D("0.5"), D("1.5"), D("98000")),
        ("open", D("1"), D("1"), D("98000")),
        ("open", D("1.5"), D("0.5"), D("98000")),
        ("closed", D("2"), D("0"), D("98000")),
    ]
    assert len(order["trades"]) == 4


def test_an_order_that_never_fills_stays_open_and_can_be_cancelled(fake, client_for):
    fake.set_fill("never")
    client = client_for(fake)
    order_id = sell(client, "0.5")["id"]
    for _ in range(3):
        assert client.fetch_order(order_id, "BTC/USD")["status"] == "open"
    client.cancel_order(order_id, "BTC/USD")
    assert client.fetch_order(order_id, "BTC/USD")["status"] == "canceled"
    assert fake.orders()[0].filled == 0
    # The reserved BTC is released.
    assert D(client.fetch_balance()["BTC"]["total"]) == D("100")


def test_a_limit_sell_waits_until_the_price_reaches_it(fake, client_for):
    client = client_for(fake)
    order_id = sell(client, "0.5", type="limit", price="99000")["id"]
    assert client.fetch_order(order_id, "BTC/USD")["status"] == "open"
    balance = client.fetch_balance()
    assert D(balance["BTC"]["used"]) == D("0.5")  # reserved by the open order
    fake.set_price("BTC/USD", "99500")
    order = client.fetch_order(order_id, "BTC/USD")
    assert order["status"] == "closed"
    assert D(order["average"]) == D("99500")


def test_cancelling_an_unknown_order_raises_order_not_found(fake, client_for):
    with pytest.raises(ccxt.OrderNotFound):
        client_for(fake).cancel_order("1234" if fake.venue.name == "bitstamp" else "OXXXXX-XXXXX-XXXXXX")


def test_fetching_an_unknown_order_raises_order_not_found(fake, client_for):
    with pytest.raises(ccxt.OrderNotFound):
        client_for(fake).fetch_order("1234" if fake.venue.name == "bitstamp" else "OXXXXX-XXXXX-XXXXXX")


def test_cancelling_a_filled_order_raises_order_not_found(fake, client_for):
    client = client_for(fake)
    order_id = sell(client, "0.5")["id"]
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(order_id, "BTC/USD")
