"""Market dicts for ``exchange.set_markets(...)``, produced by ccxt itself from the fake's market payload
so that they never drift from what ``load_markets`` would build (docs/exchanges.md)."""

from __future__ import annotations

import copy
import functools
from typing import Any

from exchanges import exchange_client
from fake_exchange.venues import VENUES, Bitstamp, Kraken


def markets_for(venue: str) -> list[dict[str, Any]]:
    """The unified market dicts (BTC/USD, ETH/USD) for ``venue``, parsed with ``number = str``."""
    return copy.deepcopy(_parsed_markets(venue))


@functools.cache
def _parsed_markets(venue: str) -> list[dict[str, Any]]:
    if venue == "bitstamp":
        exchange = exchange_client(venue)
        raw = Bitstamp().raw_markets()
        exchange.publicGetMarkets = lambda params=None: raw
        return exchange.fetch_markets()
    if venue == "kraken":
        exchange = exchange_client(venue)
        payload = {"error": [], "result": Kraken().raw_markets()}
        exchange.publicGetAssetPairs = lambda params=None: payload
        return exchange.fetch_markets()
    raise ValueError(f"unknown venue {venue!r}; one of {', '.join(VENUES)}")
