"""A local fake crypto exchange (bitstamp- and kraken-like) that real ccxt clients talk to on loopback, for
the tests and the demo: usage in fake_exchange/README.md, how it is built in docs/exchanges.md."""

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
