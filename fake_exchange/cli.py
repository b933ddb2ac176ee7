"""Run one fake venue in the foreground: shared by ``python -m fake_exchange`` and the Django
management command ``run_fake_exchange``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from fake_exchange.server import FakeExchange
from fake_exchange.state import DEFAULT_PRICES, plain, to_decimal
from fake_exchange.venues import VENUES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one, printed)")
    parser.add_argument("--venue", choices=VENUES, default="bitstamp", help="wire format to speak")
    parser.add_argument("--name", default=None, help="name shown in the control API's state")
    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="SYMBOL=PRICE",
        help="starting price, repeatable (default BTC/USD=98000, ETH/USD=3400)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")


def parse_prices(items: Sequence[str]) -> dict[str, object]:
    prices: dict[str, object] = dict(DEFAULT_PRICES)
    for item in items:
        symbol, sep, price = item.partition("=")
        if not sep:
            raise ValueError(f"--price expects SYMBOL=PRICE, got {item!r}")
        prices[symbol.strip().upper()] = to_decimal(price, f"price of {symbol}")
    return prices


def build(options: argparse.Namespace) -> FakeExchange:
    return FakeExchange(
        options.venue,
        host=options.host,
        port=options.port,
        name=options.name,
        prices=parse_prices(options.price),
        verbose=options.verbose,
    )


def describe(fake: FakeExchange) -> list[str]:
    """What the running fake serves, for the operator starting the demo."""
    lines = [
        f"Fake {fake.venue.name} exchange '{fake.name}' listening on {fake.root_url}",
        f"  ccxt urls['api']: {{'public': '{fake.base_url}', 'private': '{fake.base_url}'}}",
        f"  client: fake_exchange.ccxt_client('{fake.venue.name}', base_url='{fake.base_url}')",
        f"  control API: {fake.control_url}/state (GET), /price /failure /fill /fee /balance ... (POST JSON)",
    ]
    for symbol, price in sorted(fake.state.prices().items()):
        lines.append(f"  {symbol}: {plain(price)}")
    return lines


def run(options: argparse.Namespace, write: Callable[[str], None] = print) -> None:
    fake = build(options)
    fake.start()
    for line in describe(fake):
        write(line)
    write("Press Ctrl-C to stop.")
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
