"""Start fake venues on free ports for the duration of a ``with`` block, for tests in any package
(fake_exchange/README.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from exchanges import markets_forget
from fake_exchange.server import FakeExchange


@contextlib.contextmanager
def running_fake_exchange(
    venue: str = "bitstamp",
    *,
    name: str | None = None,
    prices: Mapping[str, object] | None = None,
    balances: Mapping[str, object] | None = None,
) -> Iterator[FakeExchange]:
    """One started venue on a free loopback port, stopped on exit (also when the block raises). The
    markets clients shared for its URL are forgotten, so a later venue on the same port starts clean."""
    fake = FakeExchange(venue, name=name, prices=prices, balances=balances)
    base_url = fake.start()
    try:
        yield fake
    finally:
        fake.stop()
        markets_forget(base_url)


@contextlib.contextmanager
def running_fake_exchanges(*venues: str) -> Iterator[list[FakeExchange]]:
    """Several started venues (``"bitstamp"``/``"kraken"``, repeats allowed), named ``bitstamp-1``,
    ``bitstamp-2``, ``kraken-1``... in order; all stopped on exit."""
    counts: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        fakes = []
        for venue in venues:
            counts[venue] = counts.get(venue, 0) + 1
            fakes.append(stack.enter_context(running_fake_exchange(venue, name=f"{venue}-{counts[venue]}")))
        yield fakes
