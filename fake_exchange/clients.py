"""``ccxt_client``: a client of the platform's ``exchanges`` adapter with the fake's test conveniences —
markets preset from the fake's own payload (no ``load_markets`` round trip) and fake credentials."""

from __future__ import annotations

import base64

import ccxt

from exchanges import exchange_client
from fake_exchange.markets import markets_for

# Any credentials do for the fake, but they must have the right shape: ccxt's kraken signer
# base64-decodes the secret before the request leaves the client.
FAKE_API_KEY = "fake-api-key"
FAKE_SECRET = base64.b64encode(b"fake-exchange-secret").decode()
FAKE_CREDENTIALS = {"api_key": FAKE_API_KEY, "secret": FAKE_SECRET}


def ccxt_client(
    venue: str = "bitstamp",
    base_url: str | None = None,
    api_key: str | None = None,
    secret: str | None = None,
    timeout_ms: int = 10_000,
    *,
    preset_markets: bool | None = None,
) -> ccxt.Exchange:
    """``exchanges.exchange_client`` for ``venue``. With ``base_url`` (a fake's ``base_url``) the markets
    are preset and missing credentials default to fake ones; ``preset_markets`` overrides the first."""
    faked = base_url is not None
    return exchange_client(
        venue,
        base_url=base_url,
        api_key=api_key if api_key is not None or not faked else FAKE_API_KEY,
        secret=secret if secret is not None or not faked else FAKE_SECRET,
        timeout_ms=timeout_ms,
        markets=markets_for(venue) if (faked if preset_markets is None else preset_markets) else None,
    )
