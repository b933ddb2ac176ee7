"""Pytest fixtures that start fresh fake venues for one test: import ``fake_bitstamp``, ``fake_kraken`` or
``fake_venues`` into a ``conftest.py`` (fake_exchange/README.md)."""

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
