"""The control API: steering a fake from another process, as the demo and a Celery worker do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest

from fake_exchange import ControlClient, FakeExchange, ccxt_client
from fake_exchange.control import ControlError

REPOSITORY = Path(__file__).resolve().parents[2]


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run code in a separate interpreter with the repository importable."""
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=REPOSITORY,
        check=True,
    )


def post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        return json.loads(response.read())


def test_a_price_set_from_another_process_is_seen_through_ccxt(fake, client_for):
    run_python(
        """
        import json, sys, urllib.request
        body = json.dumps({"symbol": "BTC/USD", "price": "101234.56"}).encode()
        request = urllib.request.Request(sys.argv[1] + "/_control/price", data=body, method="POST")
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5).read()
        """,
        fake.root_url,
    )
    assert client_for(fake).fetch_ticker("BTC/USD")["last"] == "101234.56"


def test_the_control_client_steers_from_another_process(fake_bitstamp, client_for):
    result = run_python(
        """
        import sys
        from fake_exchange import ControlClient
        control = ControlClient(sys.argv[1])
        control.set_fill("partial", fraction="0.5")
        control.set_fee_rate("0.001")
        control.fail("ticker", "http_500", times=1)
        print(control.state()["fill"]["mode"])
        """,
        fake_bitstamp.base_url,
    )
    assert result.stdout.strip() == "partial"
    client = client_for(fake_bitstamp)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ticker("BTC/USD")
    order_id = client.create_order("BTC/USD", "market", "sell", "1")["id"]
    order = client.fetch_order(order_id, "BTC/USD")
    assert (order["status"], Decimal(order["filled"]), Decimal(order["fee"]["cost"])) == (
        "open",
        Decimal("0.5"),
        Decimal("49"),
    )


def test_control_client_reads_requests_and_orders(fake_kraken, client_for):
    control = ControlClient(fake_kraken.root_url)
    client = client_for(fake_kraken)
    client.create_order("BTC/USD", "market", "sell", "0.25", None, {"clientOrderId": "sale-9"})
    [placed] = control.requests("create_order")
    assert placed["path"] == "/0/private/AddOrder"
    assert placed["form"]["cl_ord_id"] == "sale-9"
    [order] = control.orders()
    assert (order["client_order_id"], order["status"], order["filled"]) == ("sale-9", "closed", "0.25")
    control.clear_requests()
    assert control.requests() == []
    control.set_balance("BTC", "3")
    control.set_ticker_age("60")
    state = control.state()
    assert state["venue"] == "kraken"
    assert state["balances"]["BTC"]["total"] == "3"
    assert state["ticker_age_seconds"] == "60"
    control.reset()
    assert control.orders() == []
    assert control.state()["prices"] == {"BTC/USD": "98000", "ETH/USD": "3400"}


def test_control_api_refuses_bad_values(fake_bitstamp):
    control = ControlClient(fake_bitstamp.root_url)
    with pytest.raises(ControlError, match="unknown symbol"):
        control.set_price("DOGE/USD", "1")
    with pytest.raises(ControlError, match="not a decimal"):
        control.set_price("BTC/USD", "lots")
    with pytest.raises(ControlError, match="unknown failure kind"):
        control.fail("ticker", "explode")
    with pytest.raises(urllib.error.HTTPError) as raised:
        post_json(fake_bitstamp.root_url + "/_control/nonsense", {})
    assert raised.value.code == 400
    # Control calls are not recorded as exchange traffic.
    assert fake_bitstamp.requests() == []


def test_floats_are_refused_in_the_python_api(fake_bitstamp):
    with pytest.raises(TypeError):
        fake_bitstamp.set_price("BTC/USD", 98000.5)


def test_the_fake_refuses_non_loopback_addresses():
    with pytest.raises(ValueError, match="loopback"):
        FakeExchange("bitstamp", host="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        ControlClient("http://192.0.2.1:8000")


def test_the_management_command_serves_and_prints_what_it_serves():
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_fake_exchange",
            "--port",
            "0",
            "--venue",
            "kraken",
            "--price",
            "BTC/USD=97000.5",
        ],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Fake kraken exchange 'kraken' listening on http://127.0.0.1:")
        root_url = first.rsplit(" ", 1)[1].strip()
        lines = [process.stdout.readline().strip() for _ in range(5)]
        assert "BTC/USD: 97000.5" in lines
        assert "ETH/USD: 3400" in lines
        ticker = ccxt_client("kraken", base_url=root_url).fetch_ticker("ETH/USD")
        assert ticker["last"] == "3400"
    finally:
        process.terminate()
        process.wait(timeout=10)
