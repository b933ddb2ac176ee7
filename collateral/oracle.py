"""The crypto price oracle: BTC and ETH from several venues through ccxt, the median of the fresh quotes
that agree, or a stale price when too few agree (docs/design.md, "Prices")."""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

import ccxt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from accounts.audit import SYSTEM, Actor, audit_event_record
from collateral.enums import AssetKind
from collateral.models import Asset, CurrentPrice, Price, PriceQuote, QuoteStatus
from collateral.services import price_record
from core.money import places, to_decimal
from exchanges import MAX_TIMEOUT_MS, PriceVenue, price_venues  # noqa: F401  (MAX_TIMEOUT_MS: collateral.tasks)

logger = logging.getLogger(__name__)

ORACLE_SOURCE = "oracle"
# A venue clock ahead of ours by more than this is wrong, and so is its quote's time.
CLOCK_AHEAD_TOLERANCE = datetime.timedelta(seconds=5)
STALE_REASON_MAX_LENGTH = CurrentPrice._meta.get_field("stale_reason").max_length
ERROR_TEXT_MAX_LENGTH = 1000


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OracleRules:
    staleness: datetime.timedelta
    band: Decimal
    quorum: int

    @property
    def band_words(self) -> str:
        return f"{(self.band * 100).normalize():f}%"


def oracle_rules(venues: Sequence[PriceVenue] | None = None) -> OracleRules:
    staleness = settings.PRICE_STALENESS_SECONDS
    band = to_decimal(settings.PRICE_BAND)
    quorum = settings.PRICE_QUORUM
    if isinstance(staleness, bool) or not isinstance(staleness, int) or staleness <= 0:
        raise ImproperlyConfigured("PRICE_STALENESS_SECONDS must be a whole number of seconds above 0.")
    if not Decimal(0) < band < Decimal(1):
        raise ImproperlyConfigured(f"PRICE_BAND must be a fraction between 0 and 1 (0.05 = 5%), not {band}.")
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        raise ImproperlyConfigured("PRICE_QUORUM must be a whole number of at least 1.")
    if venues is not None and quorum > len(venues):
        raise ImproperlyConfigured(
            f"PRICE_QUORUM is {quorum} but only {len(venues)} venue(s) are configured: every crypto "
            "price would be stale."
        )
    return OracleRules(staleness=datetime.timedelta(seconds=staleness), band=band, quorum=quorum)


# --- fetching (threads; no database access here) ---------------------------------------------------


@dataclass(frozen=True)
class VenueQuote:
    """One venue's answer for one asset: a price and its time, or the error instead."""

    venue: str
    symbol: str
    market: str
    received_at: datetime.datetime
    price: Decimal | None = None
    quoted_at: datetime.datetime | None = None
    error: str = ""


class UnusableTicker(Exception):
    """The venue answered, but not with a price we can use."""


def _ticker_price(ticker: Mapping[str, Any]) -> Decimal:
    last = ticker.get("last")
    if last is None:
        raise UnusableTicker("the ticker has no last price")
    try:
        price = to_decimal(last)  # refuses a float: the client must run with number = str
    except (TypeError, InvalidOperation) as error:
        raise UnusableTicker(f"the last price {last!r} is not an exact number ({error})") from None
    if not price.is_finite() or price <= 0:
        raise UnusableTicker(f"the last price {last!r} is not a positive amount")
    return price


def _ticker_time(ticker: Mapping[str, Any]) -> datetime.datetime | None:
    """The venue's own time of the ticker (milliseconds since the epoch, read exactly), if it gives one."""
    milliseconds = ticker.get("timestamp")
    if milliseconds is None:
        return None
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int):
        raise UnusableTicker(f"the ticker time {milliseconds!r} is not whole milliseconds")
    seconds, rest = divmod(milliseconds, 1000)
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC) + datetime.timedelta(milliseconds=rest)


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text[:ERROR_TEXT_MAX_LENGTH]


def venue_quote_fetch(venue: PriceVenue, symbol: str) -> VenueQuote:
    """Ask one venue for one asset. Never raises: a failure comes back as a quote with its error."""
    market = venue.markets[symbol]
    try:
        ticker = venue.client().fetch_ticker(market)
        received_at = timezone.now()
        price = _ticker_price(ticker)
        quoted_at = _ticker_time(ticker) or received_at  # kraken's ticker carries no time
    except (ccxt.BaseError, UnusableTicker) as error:
        text = _error_text(error)
        logger.warning("Price venue %s gave no usable %s quote (%s): %s", venue.name, symbol, market, text)
        return VenueQuote(venue.name, symbol, market, timezone.now(), error=text)
    except Exception as error:  # a bug or a malformed answer from one venue must not stop the others
        text = _error_text(error)
        logger.exception(
            "Price venue %s failed unexpectedly for %s (%s): %s", venue.name, symbol, market, text
        )
        return VenueQuote(venue.name, symbol, market, timezone.now(), error=text)
    return VenueQuote(venue.name, symbol, market, received_at, price=price, quoted_at=quoted_at)


def venue_quotes_fetch(jobs: Sequence[tuple[PriceVenue, str]]) -> list[VenueQuote]:
    """Every (venue, asset) at once, one thread each; the answers in the order of ``jobs``."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="price-oracle") as pool:
        futures = [pool.submit(venue_quote_fetch, venue, symbol) for venue, symbol in jobs]
        return [future.result() for future in futures]


# --- judging (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgedQuote:
    quote: VenueQuote
    status: str
    note: str = ""  # why it was not used, in words (stored on the PriceQuote row)
    brief: str = ""  # the same, short, for the asset's stale reason
    used: bool = False


@dataclass(frozen=True)
class Verdict:
    symbol: str
    price: Decimal | None
    quotes: tuple[JudgedQuote, ...]
    reason: str = ""

    @property
    def is_stale(self) -> bool:
        return self.price is None


def median(values: Sequence[Decimal]) -> Decimal:
    """The middle value, or the mean of the two middle values, exact and to the stored price precision
    (half-even at the tenth place: only ever reached by a tie of two quotes ending in an odd last digit)."""
    if not values:
        raise ValueError("the median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    with localcontext() as context:
        context.prec = 60
        value = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        return value.quantize(places(settings.PRICE_DECIMAL_PLACES), rounding=ROUND_HALF_EVEN)


def _seconds(delta: datetime.timedelta) -> int:
    return delta // datetime.timedelta(seconds=1)


def quotes_judge(
    symbol: str, quotes: Sequence[VenueQuote], *, as_of: datetime.datetime, rules: OracleRules
) -> Verdict:
    """Staleness, then the band around the median of the fresh quotes, then the quorum."""
    judged: dict[int, JudgedQuote] = {}
    fresh: list[int] = []
    for index, quote in enumerate(quotes):
        if quote.error or quote.price is None or quote.quoted_at is None:
            name = quote.error.split(":", 1)[0] if quote.error else "no price"
            judged[index] = JudgedQuote(quote, QuoteStatus.ERROR, quote.error, f"error ({name})")
            continue
        age = as_of - quote.quoted_at
        if age < -CLOCK_AHEAD_TOLERANCE:
            note = f"the venue's time is {_seconds(-age)} s ahead of ours: its quote time cannot be trusted"
            judged[index] = JudgedQuote(quote, QuoteStatus.ERROR, note, "clock ahead")
        elif age > rules.staleness:
            note = f"quoted {_seconds(age)} s ago; the limit is {_seconds(rules.staleness)} s"
            judged[index] = JudgedQuote(quote, QuoteStatus.STALE, note, f"{_seconds(age)} s old")
        else:
            fresh.append(index)

    kept: list[int] = []
    if fresh:
        centre = median([quotes[i].price for i in fresh])
        with localcontext() as context:
            context.prec = 60
            allowed = centre * rules.band
        for index in fresh:
            price = quotes[index].price
            if abs(price - centre) <= allowed:
                kept.append(index)
                continue
            with localcontext() as context:
                context.prec = 60
                deviation = ((price - centre) / centre * 100).quantize(Decimal("0.01"))
            side = "above" if deviation > 0 else "below"
            note = (
                f"{price.normalize():f} is {abs(deviation)}% {side} the median {centre.normalize():f} of the "
                f"fresh quotes; the band is {rules.band_words}"
            )
            judged[index] = JudgedQuote(quotes[index], QuoteStatus.OUTLIER, note, f"outlier ({deviation:+}%)")

    if len(kept) >= rules.quorum:
        price = median([quotes[i].price for i in kept])
        for index in kept:
            judged[index] = JudgedQuote(quotes[index], QuoteStatus.ACCEPTED, used=True)
        return Verdict(symbol, price, tuple(judged[i] for i in range(len(quotes))))

    for index in kept:
        judged[index] = JudgedQuote(
            quotes[index],
            QuoteStatus.ACCEPTED,
            "fresh and within the band, but too few quotes agreed for the quorum: no price recorded",
        )
    reason = _stale_reason(symbol, [judged[i] for i in range(len(quotes))], len(kept), rules)
    return Verdict(symbol, None, tuple(judged[i] for i in range(len(quotes))), reason)


def _stale_reason(symbol: str, judged: Sequence[JudgedQuote], kept: int, rules: OracleRules) -> str:
    total = len(judged)
    if total == 0:
        return f"no venue is configured to quote {symbol}; quorum is {rules.quorum}"
    who = "venue" if total == 1 else "venues"
    head = (
        f"none of the {total} {who} gave" if kept == 0 else f"only {kept} of {total} {who} gave"
    ) + f" a fresh quote within {rules.band_words} of the median; quorum is {rules.quorum}"
    details = "; ".join(f"{j.quote.venue}: {j.brief}" for j in judged if j.brief)
    reason = f"{head} ({details})" if details else head
    if len(reason) > STALE_REASON_MAX_LENGTH:
        reason = reason[: STALE_REASON_MAX_LENGTH - 1] + "…"
    return reason


# --- recording ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetRefresh:
    symbol: str
    price: Price | None  # recorded by this refresh; None when the asset is stale
    reason: str  # why it is stale; empty when priced
    quotes: tuple[PriceQuote, ...]

    @property
    def is_stale(self) -> bool:
        return self.price is None


@dataclass(frozen=True)
class RefreshResult:
    refresh_id: uuid.UUID
    as_of: datetime.datetime
    assets: dict[str, AssetRefresh] = field(default_factory=dict)

    @property
    def repriced(self) -> tuple[str, ...]:
        """Symbols that got a new price: the pools holding them need revaluing."""
        return tuple(symbol for symbol, outcome in self.assets.items() if outcome.price is not None)

    @property
    def stale(self) -> dict[str, str]:
        """Symbols left on their last good price, with the reason."""
        return {symbol: outcome.reason for symbol, outcome in self.assets.items() if outcome.is_stale}

    def summary(self) -> dict[str, Any]:
        """What a Celery task returns: JSON-safe, decimals as strings."""
        return {
            "refresh_id": str(self.refresh_id),
            "as_of": self.as_of.isoformat(),
            "repriced": list(self.repriced),
            "prices": {
                symbol: str(outcome.price.price) for symbol, outcome in self.assets.items() if outcome.price
            },
            "stale": self.stale,
        }


def _market_currency(market: str) -> str:
    return market.split("/", 1)[1].split(":", 1)[0].upper()


def _jobs(
    venues: Sequence[PriceVenue], assets: Mapping[str, Asset]
) -> tuple[list, dict[str, list[VenueQuote]]]:
    """What to ask each venue, and the quotes refused before asking (a market in the wrong currency)."""
    jobs, refused = [], {symbol: [] for symbol in assets}
    for venue in venues:
        for symbol, asset in assets.items():
            market = venue.markets.get(symbol)
            if market is None:
                continue
            if _market_currency(market) != asset.currency:
                error = (
                    f"the market {market} is quoted in {_market_currency(market)}, but {symbol} is priced in "
                    f"{asset.currency}: fix PRICE_VENUES"
                )
                logger.error("Price venue %s: %s", venue.name, error)
                refused[symbol].append(VenueQuote(venue.name, symbol, market, timezone.now(), error=error))
                continue
            jobs.append((venue, symbol))
    return jobs, refused


def crypto_assets() -> dict[str, Asset]:
    """The crypto assets the oracle prices: those in the allowlist."""
    rows = Asset.objects.select_related("instrument").filter(
        kind=AssetKind.CRYPTO, instrument_id__in=settings.CRYPTO_ALLOWLIST
    )
    return {asset.symbol: asset for asset in rows.order_by("instrument_id")}


def crypto_prices_refresh(*, actor: Actor = SYSTEM) -> RefreshResult:
    """Ask every venue for every crypto asset, judge the quotes and record the outcome per asset."""
    venues = price_venues()
    rules = oracle_rules(venues)
    assets = crypto_assets()
    refresh_id = uuid.uuid4()
    jobs, refused = _jobs(venues, assets)
    quotes: dict[str, list[VenueQuote]] = {symbol: list(items) for symbol, items in refused.items()}
    for quote in venue_quotes_fetch(jobs):
        quotes[quote.symbol].append(quote)
    as_of = timezone.now()
    outcomes = {}
    for symbol, asset in assets.items():
        ordered = sorted(quotes[symbol], key=lambda q: q.venue)
        verdict = quotes_judge(symbol, ordered, as_of=as_of, rules=rules)
        outcomes[symbol] = _verdict_record(
            asset=asset, verdict=verdict, refresh_id=refresh_id, as_of=as_of, actor=actor
        )
    result = RefreshResult(refresh_id=refresh_id, as_of=as_of, assets=outcomes)
    logger.info(
        "Price refresh %s: repriced %s; stale %s",
        refresh_id,
        ", ".join(f"{s} {outcomes[s].price.price.normalize():f}" for s in result.repriced) or "nothing",
        "; ".join(f"{s}: {reason}" for s, reason in result.stale.items()) or "nothing",
    )
    return result


def _sources(verdict: Verdict) -> list[dict[str, str]]:
    return [
        {
            "venue": judged.quote.venue,
            "market": judged.quote.market,
            "price": str(judged.quote.price),
            "quoted_at": judged.quote.quoted_at.isoformat(),
            "received_at": judged.quote.received_at.isoformat(),
        }
        for judged in verdict.quotes
        if judged.used
    ]


@transaction.atomic
def _verdict_record(
    *, asset: Asset, verdict: Verdict, refresh_id: uuid.UUID, as_of: datetime.datetime, actor: Actor
) -> AssetRefresh:
    price = None
    if not verdict.is_stale:
        # The median of several venues within its band is the oracle's own check: a crash it agrees on is
        # used at once (a pushed price's band would hold it for a second person while calls wait).
        price = price_record(
            asset=asset,
            price=verdict.price,
            source=ORACLE_SOURCE,
            actor=actor,
            observed_at=as_of,
            band_check=False,
        )
        price.sources = _sources(verdict)
        price.save(update_fields=["sources"])
    rows = PriceQuote.objects.bulk_create(
        [
            PriceQuote(
                refresh_id=refresh_id,
                venue=judged.quote.venue,
                asset=asset,
                market=judged.quote.market,
                price=judged.quote.price,
                currency=asset.currency,
                quoted_at=judged.quote.quoted_at,
                received_at=judged.quote.received_at,
                status=judged.status,
                error=judged.note,
                chosen_price=price if judged.used else None,
            )
            for judged in verdict.quotes
        ]
    )
    _current_price_judge(asset=asset, verdict=verdict, refresh_id=refresh_id, as_of=as_of, actor=actor)
    return AssetRefresh(symbol=asset.symbol, price=price, reason=verdict.reason, quotes=tuple(rows))


def _current_price_judge(
    *, asset: Asset, verdict: Verdict, refresh_id: uuid.UUID, as_of: datetime.datetime, actor: Actor
) -> None:
    """Put the verdict on the asset's current price, unless a later refresh has judged it already."""
    current = CurrentPrice.objects.select_for_update().filter(asset=asset).first()
    if current is None:
        logger.warning("%s has no price to mark stale: %s", asset.symbol, verdict.reason)
        return
    if current.checked_at is not None and current.checked_at > as_of:
        return
    was_stale = current.is_stale
    current.is_stale = verdict.is_stale
    current.stale_reason = verdict.reason
    current.checked_at = as_of
    current.save(update_fields=["is_stale", "stale_reason", "checked_at"])
    if was_stale == current.is_stale:
        return
    if current.is_stale:
        logger.warning("The price of %s is stale: %s", asset.symbol, verdict.reason)
    audit_event_record(
        actor=actor,
        action="price.marked_stale" if current.is_stale else "price.fresh_again",
        target=asset,
        before={"is_stale": was_stale},
        after={"is_stale": current.is_stale, "reason": verdict.reason, "refresh_id": str(refresh_id)},
    )
