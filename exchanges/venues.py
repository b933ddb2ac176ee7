"""The venues named in the settings, checked: ``PRICE_VENUES`` (where the price oracle asks) and
``FORCED_SALE_VENUE`` (where crypto collateral is sold). A mistake stops with a clear message instead
of pricing from fewer venues, or selling somewhere, other than the broker believes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ccxt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from exchanges.clients import SUPPORTED_EXCHANGES, exchange_client, is_loopback_url

# The price venues are asked at once, so one refresh waits at most one timeout: keep it well inside the
# refresh task's soft time limit (collateral.tasks).
MAX_TIMEOUT_MS = 20_000
MIN_TIMEOUT_MS = 100
DEFAULT_TIMEOUT_MS = 5000
# The longest venue name and market the records keep (PriceQuote.venue/market, SaleOrder.venue).
VENUE_NAME_MAX_LENGTH = 50
MARKET_MAX_LENGTH = 20

PRICE_VENUE_KEYS = frozenset({"name", "exchange", "base_url", "timeout_ms", "markets"})
SALE_VENUE_KEYS = frozenset(
    {"name", "exchange", "base_url", "timeout_ms", "markets", "order_type", "api_key", "secret"}
)
ORDER_TYPES = ("limit", "market")


@dataclass(frozen=True)
class PriceVenue:
    """One configured price venue: ``markets`` maps an asset symbol to the venue's market (``BTC/USD``).
    ``base_url`` is set only for a local fake venue; empty means the real venue."""

    name: str
    exchange: str
    markets: Mapping[str, str]
    base_url: str = ""
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    @property
    def address(self) -> str:
        return self.base_url or f"the real {self.exchange} API"

    def client(self) -> ccxt.Exchange:
        return exchange_client(self.exchange, base_url=self.base_url or None, timeout_ms=self.timeout_ms)


@dataclass(frozen=True)
class SaleVenueConfig:
    """The configured sale venue, with the credentials of the broker's account there."""

    name: str
    exchange: str
    markets: Mapping[str, str]
    order_type: str = "limit"
    base_url: str = ""
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    api_key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)

    def market(self, symbol: str) -> str:
        try:
            return self.markets[symbol]
        except KeyError:
            raise ImproperlyConfigured(f"FORCED_SALE_VENUE has no market for {symbol}.") from None

    def client(self) -> ccxt.Exchange:
        return exchange_client(
            self.exchange,
            base_url=self.base_url or None,
            api_key=self.api_key,
            secret=self.secret,
            timeout_ms=self.timeout_ms,
        )


def _exchange(item: Mapping[str, Any], where: str) -> str:
    exchange = item.get("exchange")
    if exchange not in SUPPORTED_EXCHANGES:
        raise ImproperlyConfigured(
            f"{where}: exchange must be one of {', '.join(SUPPORTED_EXCHANGES)}, not {exchange!r}."
        )
    return exchange


def _base_url(item: Mapping[str, Any], where: str) -> str:
    base_url = str(item.get("base_url") or "").strip()
    if base_url and not is_loopback_url(base_url):
        raise ImproperlyConfigured(
            f"{where}: base_url is only for the local fake exchange and must be a loopback address, "
            f"not {base_url!r}; leave it out to use the real venue."
        )
    return base_url


def _timeout_ms(item: Mapping[str, Any], where: str) -> int:
    timeout_ms = item.get("timeout_ms", DEFAULT_TIMEOUT_MS)
    if (
        isinstance(timeout_ms, bool)
        or not isinstance(timeout_ms, int)
        or not MIN_TIMEOUT_MS <= timeout_ms <= MAX_TIMEOUT_MS
    ):
        raise ImproperlyConfigured(
            f"{where}: timeout_ms must be whole milliseconds between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}."
        )
    return timeout_ms


def _markets(item: Mapping[str, Any], where: str) -> dict[str, str]:
    markets = item.get("markets")
    if not isinstance(markets, Mapping) or not markets:
        raise ImproperlyConfigured(f"{where}: markets must map asset symbols to markets.")
    for symbol, market in markets.items():
        if not isinstance(market, str) or "/" not in market or len(market) > MARKET_MAX_LENGTH:
            raise ImproperlyConfigured(
                f"{where}: the market for {symbol} must look like 'BTC/USD', not {market!r}."
            )
    return dict(markets)


def _unknown_keys(item: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = set(item) - known
    if unknown:
        raise ImproperlyConfigured(f"{where} has unknown keys: {', '.join(sorted(unknown))}.")


def price_venues(config: Sequence[Mapping[str, Any]] | None = None) -> list[PriceVenue]:
    """The venues of ``settings.PRICE_VENUES`` (or of ``config``), checked."""
    config = settings.PRICE_VENUES if config is None else config
    if not isinstance(config, list | tuple) or not config:
        raise ImproperlyConfigured("PRICE_VENUES must be a non-empty JSON list of venues.")
    venues, names = [], set()
    for number, item in enumerate(config, start=1):
        where = f"PRICE_VENUES item {number}"
        if not isinstance(item, Mapping):
            raise ImproperlyConfigured(f"{where} must be an object with name, exchange and markets.")
        _unknown_keys(item, PRICE_VENUE_KEYS, where)
        name = str(item.get("name") or "").strip()
        if not name or len(name) > VENUE_NAME_MAX_LENGTH:
            raise ImproperlyConfigured(f"{where} needs a name of at most {VENUE_NAME_MAX_LENGTH} characters.")
        if name in names:
            raise ImproperlyConfigured(f"{where}: the venue name {name!r} is used twice.")
        names.add(name)
        where = f"{where} ({name})"
        exchange = _exchange(item, where)
        base_url = _base_url(item, where)
        timeout_ms = _timeout_ms(item, where)
        markets = _markets(item, where)
        venues.append(
            PriceVenue(
                name=name,
                exchange=exchange,
                markets={str(symbol).upper(): market for symbol, market in markets.items()},
                base_url=base_url,
                timeout_ms=timeout_ms,
            )
        )
    return venues


def sale_venue_config(config: Mapping[str, Any] | None = None) -> SaleVenueConfig:
    """The venue of ``settings.FORCED_SALE_VENUE`` (or of ``config``), checked."""
    config = settings.FORCED_SALE_VENUE if config is None else config
    where = "FORCED_SALE_VENUE"
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(f"{where} must be a JSON object with name, exchange and markets.")
    missing = {"name", "exchange", "markets"} - set(config)
    if missing:
        raise ImproperlyConfigured(f"{where} needs {', '.join(sorted(missing))}.")
    _unknown_keys(config, SALE_VENUE_KEYS, where)
    name = str(config["name"] or "").strip()
    if not name or len(name) > VENUE_NAME_MAX_LENGTH:
        raise ImproperlyConfigured(f"{where} needs a name of at most {VENUE_NAME_MAX_LENGTH} characters.")
    order_type = config.get("order_type", "limit")
    if order_type not in ORDER_TYPES:
        raise ImproperlyConfigured(f"{where} order_type is limit or market.")
    return SaleVenueConfig(
        name=name,
        exchange=_exchange(config, where),
        markets=_markets(config, where),
        order_type=order_type,
        base_url=_base_url(config, where),
        timeout_ms=_timeout_ms(config, where),
        api_key=config.get("api_key") or None,
        secret=config.get("secret") or None,
    )


def venues_check() -> None:
    """Refuse to start without the venues production needs: at least ``PRICE_QUORUM`` price venues (fewer,
    and every crypto price would be stale) and a forced-sale venue, each configured correctly."""
    venues = price_venues()
    if len(venues) < settings.PRICE_QUORUM:
        raise ImproperlyConfigured(
            f"PRICE_VENUES names {len(venues)} venue(s), fewer than PRICE_QUORUM ({settings.PRICE_QUORUM}): "
            "no crypto price could ever be confirmed."
        )
    sale_venue_config()
