"""Build a real ccxt client for a venue — pointed at a fake exchange when ``base_url`` is given, at the
real venue otherwise. The platform's price oracle and sale execution use this in tests, in the demo
and (without ``base_url``) in production, so the three differ only in the URL."""

from __future__ import annotations

import base64
from typing import Any

import ccxt

from fake_exchange.markets import markets_for
from fake_exchange.venues import VENUES

# Any credentials do for the fake, but they must have the right shape: ccxt's kraken signer
# base64-decodes the secret before the request leaves the client.
FAKE_API_KEY = "fake-api-key"
FAKE_SECRET = base64.b64encode(b"fake-exchange-secret").decode()


def ccxt_client(
    venue: str = "bitstamp",
    base_url: str | None = None,
    api_key: str | None = None,
    secret: str | None = None,
    timeout_ms: int = 10_000,
    *,
    preset_markets: bool | None = None,
    enable_rate_limit: bool | None = None,
    config: dict[str, Any] | None = None,
) -> ccxt.Exchange:
    """A ``ccxt.bitstamp``/``ccxt.kraken`` with ``number = str`` (every number a string: convert with
    ``Decimal(...)``, never float).

    With ``base_url`` (a fake exchange's ``base_url``): the API URLs point there, the markets are preset
    (no ``load_markets`` download), client-side rate limiting is off (the fake has no limits and tests
    should be fast), proxies from the environment are ignored (traffic must stay on loopback) and
    missing credentials default to fake ones. Without it the client talks to the real venue with
    ccxt's defaults; ``preset_markets``/``enable_rate_limit`` override either default.
    """
    if venue not in VENUES:
        raise ValueError(f"unknown venue {venue!r}; one of {', '.join(VENUES)}")
    faked = base_url is not None
    settings: dict[str, Any] = {
        "apiKey": api_key if api_key is not None else (FAKE_API_KEY if faked else None),
        "secret": secret if secret is not None else (FAKE_SECRET if faked else None),
        "timeout": timeout_ms,
        "enableRateLimit": (not faked) if enable_rate_limit is None else enable_rate_limit,
        **(config or {}),
    }
    exchange: ccxt.Exchange = getattr(ccxt, venue)({k: v for k, v in settings.items() if v is not None})
    exchange.number = str
    if faked:
        exchange.urls["api"] = {"public": base_url, "private": base_url}
        exchange.session.trust_env = False
    if preset_markets if preset_markets is not None else faked:
        markets = markets_for(venue)
        exchange.set_markets(markets)
        if venue == "kraken":
            # kraken resolves the pair names in order descriptions ("sell 0.5 XBTUSD @ market") through
            # this index, which only its own fetch_markets fills in.
            exchange.options["marketsByAltname"] = exchange.index_by(markets, "altname")
    return exchange
