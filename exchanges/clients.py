"""ccxt clients for the supported venues: exact numbers (``number = str``), the real venue unless a
loopback base URL is configured, and each venue's markets loaded once per process and shared."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

import ccxt

SUPPORTED_EXCHANGES: tuple[str, ...] = ("bitstamp", "kraken")
DEFAULT_TIMEOUT_MS = 10_000


def is_loopback_url(url: str) -> bool:
    """Whether the URL's host is this machine (127.0.0.0/8, ::1 or ``localhost``)."""
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _SharedMarkets:
    """Markets are a large download: the first client of a venue loads them, every later client of the
    same venue in this process reuses them. Clients asking while the first load runs wait for it and
    share its outcome (the markets, or its error), so a venue that hangs costs one timeout, not one each."""

    _market_source: tuple[str, str]

    def load_markets(self, reload: bool = False, params: dict | None = None) -> dict:
        params = params or {}
        if reload or self.markets:
            return super().load_markets(reload, params)

        def load() -> ccxt.Exchange:
            super(_SharedMarkets, self).load_markets(False, params)
            return self

        source = _shared_markets.get_or_load(self._market_source, load)
        if source is not self:
            self.set_markets_from_exchange(source)
        return self.markets


class _Bitstamp(_SharedMarkets, ccxt.bitstamp):
    pass


class _Kraken(_SharedMarkets, ccxt.kraken):
    pass


_CLIENT_CLASSES: dict[str, type[ccxt.Exchange]] = {"bitstamp": _Bitstamp, "kraken": _Kraken}


class _MarketsRegistry:
    """Loaded clients per (exchange, base URL), and the loads in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str], ccxt.Exchange] = {}
        self._loading: dict[tuple[str, str], Future] = {}

    def get_or_load(self, key: tuple[str, str], load: Callable[[], ccxt.Exchange]) -> ccxt.Exchange:
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is not None:
                return loaded
            pending = self._loading.get(key)
            owner = pending is None
            if owner:
                pending = self._loading[key] = Future()
        if not owner:
            return pending.result()  # the markets, or the load's own error
        try:
            client = load()
        except BaseException as error:
            with self._lock:
                del self._loading[key]
            pending.set_exception(error)
            raise
        with self._lock:
            self._loaded[key] = client
            del self._loading[key]
        pending.set_result(client)
        return client

    def forget(self, base_url: str | None = None) -> None:
        """Drop the shared markets (of one base URL, or all): the next client loads them again."""
        with self._lock:
            for key in [key for key in self._loaded if base_url is None or key[1] == base_url]:
                del self._loaded[key]


_shared_markets = _MarketsRegistry()
markets_forget = _shared_markets.forget


def exchange_client(
    exchange: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    secret: str | None = None,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    markets: Sequence[dict[str, Any]] | None = None,
) -> ccxt.Exchange:
    """A ccxt client for ``exchange`` with ``number = str`` (convert its values with ``Decimal``).

    Without ``base_url`` it talks to the real venue, with ccxt's rate limiting. A ``base_url`` must be on
    loopback (a local fake venue): the API URLs point there, rate limiting is off and proxies from the
    environment are ignored. ``markets`` presets the markets; otherwise they are loaded on first use,
    once per venue and process (see ``_SharedMarkets``)."""
    if exchange not in SUPPORTED_EXCHANGES:
        raise ValueError(f"unknown exchange {exchange!r}; one of {', '.join(SUPPORTED_EXCHANGES)}")
    if base_url is not None and not is_loopback_url(base_url):
        raise ValueError(
            f"base_url {base_url!r} is not a loopback address: only a local fake venue may replace the real API"
        )
    options: dict[str, Any] = {"timeout": timeout_ms, "enableRateLimit": base_url is None}
    if api_key is not None:
        options["apiKey"] = api_key
    if secret is not None:
        options["secret"] = secret
    client = _CLIENT_CLASSES[exchange](options)
    client.number = str
    client._market_source = (exchange, base_url or "")
    if base_url is not None:
        client.urls["api"] = {"public": base_url, "private": base_url}
        client.session.trust_env = False  # no proxy from the environment may see loopback traffic
    if markets is not None:
        client.set_markets(list(markets))
        if exchange == "kraken":
            # kraken reads the pair names in order descriptions ("sell 0.5 XBTUSD @ market") through this
            # index, which only its own fetch_markets fills in.
            client.options["marketsByAltname"] = client.index_by(list(markets), "altname")
    return client
