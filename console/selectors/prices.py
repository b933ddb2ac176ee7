"""The prices page: each venue's latest quote of each crypto asset (its age, whether the median used it), the
oracle's median and band, the securities prices and FX rates in use with their age, and the pushed prices
and FX rates held for a second person's confirmation."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from collateral.enums import USABLE_PRICE_STATUSES, AssetKind, PriceStatus
from collateral.models import Asset, CurrentPrice, FxRate, Price, PriceQuote, QuoteStatus
from collateral.oracle import OracleRules, crypto_assets, oracle_rules
from collateral.services import fx_rate_in_use
from console.selectors.facility import CHART_POINTS, PRICE_COLOURS
from web.formatting import hk_time

HELD_SHOWN = 100
CHART_PERIOD = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class VenueCell:
    venue: str
    quote: PriceQuote | None
    seen_at: datetime.datetime | None
    stale: bool

    @property
    def used(self) -> bool:
        return self.quote is not None and self.quote.status == QuoteStatus.ACCEPTED


@dataclass(frozen=True)
class CryptoRow:
    asset: Asset
    cells: list[VenueCell]
    current: CurrentPrice | None
    age: datetime.timedelta | None
    band_low: Decimal | None
    band_high: Decimal | None


@dataclass(frozen=True)
class InUse:
    label: str
    value: Decimal
    currency: str
    source: str
    observed_at: datetime.datetime
    age: datetime.timedelta
    stale: bool
    stale_reason: str = ""


@dataclass(frozen=True)
class PricesPage:
    rules: OracleRules
    venues: list[str]
    crypto: list[CryptoRow]
    securities: list[InUse]
    fx: list[InUse]
    held_prices: list[Price]
    held_fx: list[FxRate]
    chart: dict | None


def _venue_names() -> list[str]:
    configured = [str(item.get("name", "")) for item in settings.PRICE_VENUES if isinstance(item, dict)]
    seen = PriceQuote.objects.order_by().values_list("venue", flat=True).distinct()
    return configured + sorted(set(seen) - set(configured))


def _latest_quotes() -> dict[tuple[str, int], PriceQuote]:
    """The newest quote of each venue and asset (PostgreSQL's DISTINCT ON, over the venue-asset index)."""
    rows = PriceQuote.objects.order_by("venue", "asset_id", "-received_at", "-pk").distinct(
        "venue", "asset_id"
    )
    return {(quote.venue, quote.asset_id): quote for quote in rows}


def _last_hour_chart(symbols: list[str], now: datetime.datetime) -> dict | None:
    """The prices the platform used for each crypto asset over the last hour (each on its own axis)."""
    rows = list(
        Price.objects.filter(
            asset_id__in=symbols, observed_at__gte=now - CHART_PERIOD, status__in=USABLE_PRICE_STATUSES
        )
        .order_by("observed_at", "pk")
        .values_list("asset_id", "observed_at", "price")
    )
    if not rows:
        return None
    if len(rows) > CHART_POINTS:
        step = -(-len(rows) // CHART_POINTS)
        rows = [*rows[::step], rows[-1]]
    datasets = [
        {
            "label": symbol,
            "data": [str(price) if asset == symbol else None for asset, _, price in rows],
            "borderColor": PRICE_COLOURS[n % len(PRICE_COLOURS)],
            "spanGaps": True,
            "pointRadius": 0,
            "yAxisID": f"y{n}" if n else "y",
        }
        for n, symbol in enumerate(symbols)
    ]
    scales = {
        f"y{n}": {"position": "right", "grid": {"drawOnChartArea": False}} for n in range(1, len(symbols))
    }
    return {
        "type": "line",
        "data": {"labels": [hk_time(at) for _, at, _ in rows], "datasets": datasets},
        "options": {"scales": scales, "plugins": {"legend": {"position": "bottom"}}},
    }


def prices_page(*, chart: bool = True) -> PricesPage:
    """Every figure of the prices page; without ``chart`` the last hour's chart is left out (the polled
    fragment, which does not redraw it)."""
    now = timezone.now()
    rules = oracle_rules()
    venues = _venue_names()
    quotes = _latest_quotes()
    currents = {
        row.asset_id: row
        for row in CurrentPrice.objects.select_related("price", "asset").order_by("asset_id")
    }
    crypto = []
    assets = crypto_assets()
    for asset in assets.values():
        cells = []
        for venue in venues:
            quote = quotes.get((venue, asset.pk))
            seen = quote and (quote.quoted_at or quote.received_at)
            stale = bool(seen) and now - seen > rules.staleness
            cells.append(VenueCell(venue=venue, quote=quote, seen_at=seen or None, stale=stale))
        current = currents.get(asset.pk)
        median = current.price.price if current else None
        crypto.append(
            CryptoRow(
                asset=asset,
                cells=cells,
                current=current,
                age=now - current.price.observed_at if current else None,
                band_low=median * (1 - rules.band) if median is not None else None,
                band_high=median * (1 + rules.band) if median is not None else None,
            )
        )
    securities = []
    for current in currents.values():
        if current.asset.kind in (AssetKind.CRYPTO, AssetKind.CASH):
            continue
        age = now - current.price.observed_at
        securities.append(
            InUse(
                label=current.asset.symbol,
                value=current.price.price,
                currency=current.price.currency,
                source=current.price.source,
                observed_at=current.price.observed_at,
                age=age,
                stale=current.is_stale or age > settings.SECURITY_PRICE_MAX_AGE,
                stale_reason=current.stale_reason,
            )
        )
    securities.sort(key=lambda row: row.label)
    fx = []
    for currency in settings.CURRENCIES:
        if currency == "HKD":
            continue
        rate = fx_rate_in_use(currency, "HKD")
        if rate is None:
            continue
        age = now - rate.observed_at
        fx.append(
            InUse(
                label=f"{currency}/HKD",
                value=rate.rate,
                currency="HKD",
                source=rate.source,
                observed_at=rate.observed_at,
                age=age,
                stale=age > settings.FX_MAX_AGE,
            )
        )
    held_prices = list(
        Price.objects.filter(status=PriceStatus.UNCONFIRMED)
        .select_related("asset", "recorded_by")
        .order_by("observed_at", "pk")[:HELD_SHOWN]
    )
    held_fx = list(
        FxRate.objects.filter(status=PriceStatus.UNCONFIRMED)
        .select_related("recorded_by")
        .order_by("observed_at", "pk")[:HELD_SHOWN]
    )
    return PricesPage(
        rules=rules,
        venues=venues,
        crypto=crypto,
        securities=securities,
        fx=fx,
        held_prices=held_prices,
        held_fx=held_fx,
        chart=_last_hour_chart([asset.pk for asset in assets.values()], now) if chart else None,
    )
