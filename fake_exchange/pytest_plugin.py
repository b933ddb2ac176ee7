"""Pytest fixtures for the fake exchange. Import the ones you need into a ``conftest.py``:

    from fake_exchange.pytest_plugin import fake_bitstamp, fake_kraken, fake_venues  # noqa: F401

Each fixture starts fresh venues for one test and stops them afterwards, so no state leaks between
tests; starting one costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fake_exchange.server import FakeExchange
from fake_exchange.testing import running_fake_exchange, running_fake_exchanges


@pytest.fixture
def fake_bitstamp() -> Iterator[FakeExchange]:
    """A running bitstamp-like venue (BTC/USD 98000, ETH/USD 3400)."""
    with running_fake_exchange("bitstamp") as fake:
        yield fake


@pytest.fixture
def fake_kraken() -> Iterator[FakeExchange]:
    """A running kraken-like venue (BTC/USD 98000, ETH/USD 3400)."""
    with running_fake_exchange("kraken") as fake:
        yield fake


@pytest.fixture
def fake_venues() -> Iterator[list[FakeExchange]]:
    """Three running venues — two bitstamp-like, one kraken-like — as the price oracle's median sees them."""
    with running_fake_exchanges("bitstamp", "bitstamp", "kraken") as fakes:
        yield fakes
