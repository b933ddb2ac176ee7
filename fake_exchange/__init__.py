"""A local fake crypto exchange (bitstamp- and kraken-like) that real ccxt clients talk to over HTTP on
loopback, for the test suite and the demo. A development tool over the platform's ``exchanges`` adapter
(never the reverse), and a plain package, not a Django app: a worker, the demo or a test can run it
without Django settings.

    from fake_exchange import FakeExchange, ccxt_client

    with FakeExchange("bitstamp") as fake:
        client = ccxt_client("bitstamp", base_url=fake.base_url)
        client.fetch_ticker("BTC/USD")["last"]   # '98000'
"""

from fake_exchange.clients import FAKE_CREDENTIALS, ccxt_client
from fake_exchange.control import ControlClient
from fake_exchange.markets import markets_for
from fake_exchange.server import FakeExchange
from fake_exchange.state import DEFAULT_BALANCES, DEFAULT_PRICES, ENDPOINTS, FAILURE_KINDS
from fake_exchange.venues import VENUES

__all__ = [
    "DEFAULT_BALANCES",
    "DEFAULT_PRICES",
    "ENDPOINTS",
    "FAILURE_KINDS",
    "FAKE_CREDENTIALS",
    "VENUES",
    "ControlClient",
    "FakeExchange",
    "ccxt_client",
    "markets_for",
]
