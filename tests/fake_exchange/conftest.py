"""Fixtures for the fake exchange's own tests: running venues (from the reusable plugin) and a factory
for real ccxt clients pointed at them."""

from __future__ import annotations

from collections.abc import Callable

import ccxt
import pytest

from fake_exchange import FakeExchange, ccxt_client
from fake_exchange.pytest_plugin import fake_bitstamp, fake_kraken, fake_venues

__all__ = ["client_for", "fake", "fake_bitstamp", "fake_kraken", "fake_venues"]


@pytest.fixture(params=["bitstamp", "kraken"])
def fake(request: pytest.FixtureRequest) -> FakeExchange:
    """Each venue in turn, for behaviour both must share."""
    return request.getfixturevalue(f"fake_{request.param}")


@pytest.fixture
def client_for() -> Callable[..., ccxt.Exchange]:
    """``client_for(fake, timeout_ms=...)``: a real ccxt client of the fake's venue, pointed at it."""

    def build(fake: FakeExchange, timeout_ms: int = 5_000) -> ccxt.Exchange:
        return ccxt_client(fake.venue.name, base_url=fake.base_url, timeout_ms=timeout_ms)

    return build
