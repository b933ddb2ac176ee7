"""Reads for collateral: prices, FX, positions and the valuation of a pool."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from collateral.calculations import PoolValuation, PositionInput, pool_valuation
from collateral.enums import USABLE_PRICE_STATUSES, AssetKind, PriceStatus
from collateral.models import Asset, CollateralPool, CurrentPrice, FxRate, Price, PriceQuote
from ledger.enums import AccountKind
from ledger.models import Account, Balance
from ledger.selectors import balances_of


@dataclass(frozen=True)
class Quote:
    price: Decimal
    currency: str
    source: str
    observed_at: datetime.datetime


def current_prices(symbols: list[str] | None = None) -> dict[str, Quote]:
    rows = CurrentPrice.objects.all()
    if symbols is not None:
        rows = rows.filter(asset_id__in=symbols)
    # Values, not model instances: every sweep reads the price of every asset.
    rows = rows.values_list(
        "asset_id", "price__price", "price__currency", "price__source", "price__observed_at"
    )
    return {symbol: Quote(*quote) for symbol, *quote in rows}


def fx_rates_latest() -> dict[tuple[str, str], FxRate]:
    """The rate in use for each pair: the newest accepted or confirmed one (never one held for confirmation)."""
    usable = FxRate.objects.filter(status__in=USABLE_PRICE_STATUSES)
    latest = usable.filter(currency=OuterRef("currency"), quote=OuterRef("quote")).order_by(
        "-observed_at", "-pk"
    )
    rows = usable.filter(pk=Subquery(latest.values("pk")[:1]))
    return {(rate.currency, rate.quote): rate for rate in rows}


def held_prices() -> list[Price]:
    """Prices held for confirmation, oldest first (for operations to see, and a second person to decide)."""
    return list(
        Price.objects.filter(status=PriceStatus.UNCONFIRMED)
        .select_related("asset")
        .order_by("observed_at", "pk")
    )


def held_fx_rates() -> list[FxRate]:
    """FX rates held for confirmation, oldest first."""
    return list(FxRate.objects.filter(status=PriceStatus.UNCONFIRMED).order_by("observed_at", "pk"))


def fx_to_hkd() -> dict[str, Decimal]:
    """HKD per unit of each currency we can convert: direct rates, or through USD (USDT/USD × USD/HKD)."""
    rates = {pair: rate.rate for pair, rate in fx_rates_latest().items()}
    currencies = {"HKD"} | {currency for currency, _ in rates}
    result = {}
    for currency in currencies:
        rate = hkd_rate(
            currency,
            direct=rates.get((currency, "HKD")),
            to_usd=rates.get((currency, "USD")),
            usd_to_hkd=rates.get(("USD", "HKD")),
        )
        if rate is not None:
            result[currency] = rate
    return result


def hkd_rate(
    currency: str, *, direct: Decimal | None, to_usd: Decimal | None, usd_to_hkd: Decimal | None
) -> Decimal | None:
    """HKD per unit of ``currency`` from the newest usable rates of its pairs: 1 for HKD; its direct rate to
    HKD; else its rate to USD times USD/HKD; else None (no route). ``fx_to_hkd`` and the one-statement read of
    a facility (``financing.selectors.facility_read``) both convert by this rule."""
    if currency == "HKD":
        return Decimal(1)  # an HKD/HKD rate cannot be recorded (the two currencies of a pair differ)
    if direct is not None:
        return direct
    if to_usd is not None and usd_to_hkd is not None:
        return to_usd * usd_to_hkd
    return None


def assets_by_symbol(symbols=None) -> dict[str, Asset]:
    rows = Asset.objects.select_related("instrument")
    if symbols is not None:
        rows = rows.filter(pk__in=symbols)
    return {asset.symbol: asset for asset in rows}


def position_inputs(
    holdings: dict[str, Decimal],
    *,
    assets: dict[str, Asset] | None = None,
    prices: dict[str, Quote] | None = None,
    fx: dict[str, Decimal] | None = None,
) -> list[PositionInput]:
    """Turn holdings (symbol → quantity) into valuation inputs with current prices, FX and haircuts."""
    symbols = list(holdings)
    assets = assets if assets is not None else assets_by_symbol(symbols)
    prices = prices if prices is not None else current_prices(symbols)
    fx = fx if fx is not None else fx_to_hkd()
    inputs = []
    for symbol, quantity in holdings.items():
        asset = assets[symbol]
        if asset.kind == "cash":
            price, currency = Decimal(1), asset.currency
        else:
            quote = prices.get(symbol)
            price, currency = (quote.price, quote.currency) if quote else (None, asset.currency)
        inputs.append(
            PositionInput(
                symbol=symbol,
                quantity=quantity,
                price=price,
                fx_to_hkd=fx.get(currency),
                haircut=asset.haircut,
                concentration_limit=asset.concentration_limit,
                eligible=asset.eligible,
                lot_size=asset.lot_size,
                decimals=asset.decimals,
                kind=asset.kind,
            )
        )
    return inputs


def pool_holdings(pool: CollateralPool) -> dict[str, Decimal]:
    return balances_of(pool.account)


def pool_valuation_of(pool: CollateralPool) -> PoolValuation:
    return pool_valuation(position_inputs(pool_holdings(pool)))


# --- freshness: no forced sale runs on a stale price ---------------------------------------------


class Freshness(NamedTuple):
    is_fresh: bool
    reason: str  # why not, in words; empty when fresh


def age_in_words(age: datetime.timedelta) -> str:
    seconds = age // datetime.timedelta(seconds=1)
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def _fx_route(currency: str, rates: dict[tuple[str, str], FxRate]) -> list[tuple[str, str]] | None:
    """The rates that turn ``currency`` into HKD, as ``fx_to_hkd`` uses them; None when there are none."""
    if currency == "HKD":
        return []
    if (currency, "HKD") in rates:
        return [(currency, "HKD")]
    if (currency, "USD") in rates and ("USD", "HKD") in rates:
        return [(currency, "USD"), ("USD", "HKD")]
    return None


def fx_freshness(
    currency: str,
    *,
    now: datetime.datetime | None = None,
    rates: dict[tuple[str, str], FxRate] | None = None,
) -> Freshness:
    """Whether the rates converting ``currency`` to HKD are younger than ``FX_MAX_AGE``."""
    now = now or timezone.now()
    rates = rates if rates is not None else fx_rates_latest()
    route = _fx_route(currency, rates)
    if route is None:
        return Freshness(False, f"there is no FX rate from {currency} to HKD")
    reasons = []
    for pair in route:
        age = now - rates[pair].observed_at
        if age > settings.FX_MAX_AGE:
            reasons.append(
                f"the {pair[0]}/{pair[1]} rate is {age_in_words(age)} old; the limit is "
                f"{age_in_words(settings.FX_MAX_AGE)}"
            )
    return Freshness(not reasons, "; ".join(reasons))


def assets_freshness(
    assets: list[Asset] | None = None, *, now: datetime.datetime | None = None
) -> dict[str, Freshness]:
    """Whether each asset's price (and the FX rate it needs) may be acted on: crypto confirmed by the
    oracle within ``PRICE_STALENESS_SECONDS`` and not marked stale, a security price younger than
    ``SECURITY_PRICE_MAX_AGE``, an FX rate younger than ``FX_MAX_AGE``; cash in HKD always."""
    now = now or timezone.now()
    assets = list(Asset.objects.all()) if assets is None else list(assets)
    currents = {
        row.asset_id: row
        for row in CurrentPrice.objects.select_related("price").filter(asset_id__in=[a.pk for a in assets])
    }
    rates = fx_rates_latest()
    result = {}
    for asset in assets:
        reasons = []
        if asset.kind != AssetKind.CASH:
            current = currents.get(asset.pk)
            if current is None:
                reasons.append(f"{asset.symbol} has no price")
            else:
                if current.is_stale:
                    reasons.append(f"the price of {asset.symbol} is marked stale: {current.stale_reason}")
                limit = (
                    datetime.timedelta(seconds=settings.PRICE_STALENESS_SECONDS)
                    if asset.kind == AssetKind.CRYPTO
                    else settings.SECURITY_PRICE_MAX_AGE
                )
                age = now - current.price.observed_at
                if age > limit:
                    reasons.append(
                        f"the price of {asset.symbol} is {age_in_words(age)} old; the limit is "
                        f"{age_in_words(limit)}"
                    )
        fx = fx_freshness(asset.currency, now=now, rates=rates)
        if not fx.is_fresh:
            reasons.append(
                fx.reason
                if asset.kind == AssetKind.CASH
                else f"{asset.symbol} is priced in {asset.currency}, and {fx.reason}"
            )
        result[asset.symbol] = Freshness(not reasons, "; ".join(reasons))
    return result


def price_doubts(assets: list[Asset]) -> dict[str, str]:
    """The assets whose price may not be acted on because it is in doubt, with the reason: a newer price
    of the asset, or a newer rate on the route of its currency to HKD, is held for confirmation (the one in use
    may be wrong, or the held one may be); or the rate in use lies outside its pair's peg band and no person
    confirmed it. A forced sale pauses on them (``financing.liquidation``)."""
    rates = fx_rates_latest()
    currents = dict(
        CurrentPrice.objects.filter(asset_id__in=[a.pk for a in assets]).values_list(
            "asset_id", "price__observed_at"
        )
    )
    held = {}
    for price in Price.objects.filter(status=PriceStatus.UNCONFIRMED, asset_id__in=[a.pk for a in assets]):
        in_use = currents.get(price.asset_id)
        if in_use is None or price.observed_at >= in_use:
            held.setdefault(price.asset_id, price)
    held_rates = {}
    for rate in FxRate.objects.filter(status=PriceStatus.UNCONFIRMED).order_by("observed_at", "pk"):
        in_use = rates.get((rate.currency, rate.quote))
        if in_use is None or rate.observed_at >= in_use.observed_at:
            held_rates.setdefault((rate.currency, rate.quote), rate)
    result = {}
    for asset in assets:
        reasons = []
        if asset.symbol in held:
            price = held[asset.symbol]
            reasons.append(
                f"a price of {price.price.normalize():f} {price.currency} for {asset.symbol} awaits confirmation "
                f"({price.held_reason})"
            )
        for pair in _fx_route(asset.currency, rates) or []:
            if pair in held_rates:
                rate = held_rates[pair]
                reasons.append(
                    f"a {pair[0]}/{pair[1]} rate of {rate.rate.normalize():f} awaits confirmation "
                    f"({rate.held_reason})"
                )
            in_use = rates[pair]
            peg = settings.FX_PEG_BANDS.get(f"{pair[0]}/{pair[1]}")
            if (
                peg is not None
                and in_use.status != PriceStatus.CONFIRMED
                and not peg[0] <= in_use.rate <= peg[1]
            ):
                reasons.append(
                    f"the {pair[0]}/{pair[1]} rate in use, {in_use.rate.normalize():f}, is outside its peg band of "
                    f"{peg[0].normalize():f}–{peg[1].normalize():f} and was not confirmed by a person"
                )
        if reasons:
            result[asset.symbol] = "; ".join(reasons)
    return result


def price_freshness(asset: Asset, *, now: datetime.datetime | None = None) -> Freshness:
    """``(is_fresh, reason)`` for one asset: a forced sale must not run when it is not fresh."""
    return assets_freshness([asset], now=now)[asset.symbol]


def stale_assets(*, now: datetime.datetime | None = None) -> dict[str, str]:
    """Every asset whose price may not be acted on now, with the reason."""
    return {symbol: f.reason for symbol, f in assets_freshness(now=now).items() if not f.is_fresh}


def price_quotes_latest(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], PriceQuote | None]:
    """The last quote of each (venue, asset symbol): one indexed look-up per pair."""
    return {
        (venue, symbol): PriceQuote.objects.filter(venue=venue, asset_id=symbol)
        .order_by("-received_at", "-pk")
        .first()
        for venue, symbol in pairs
    }


# --- free custody holdings --------------------------------------------------------------------------


def custody_account_of(client) -> Account | None:
    """The client's free-holdings ledger account, or None when nothing was ever received into it."""
    return Account.objects.filter(kind=AccountKind.CUSTODY, client=client).order_by("pk").first()


def custody_holdings(client) -> dict[str, Decimal]:
    """A client's free (unpledged) holdings at the broker, symbol → quantity, from the ledger: what the
    custody system reported received less what was released or moved into the pool."""
    rows = (
        Balance.objects.filter(account__kind=AccountKind.CUSTODY, account__client=client)
        .exclude(amount=0)
        .order_by("instrument_id")
    )
    return dict(rows.values_list("instrument_id", "amount"))


@dataclass(frozen=True)
class FreeHolding:
    symbol: str
    quantity: Decimal
    market_value: Decimal | None  # HKD at the current price; None without a price or FX rate
    eligible: bool


def custody_holdings_valued(client) -> list[FreeHolding]:
    """The free holdings with their market value now (for display: they are not pledged, so they have no
    margin value)."""
    inputs = position_inputs(custody_holdings(client))
    valued = {v.symbol: v for v in pool_valuation(inputs).positions}
    return [
        FreeHolding(
            symbol=p.symbol,
            quantity=p.quantity,
            market_value=valued[p.symbol].market_value if valued[p.symbol].priced else None,
            eligible=p.eligible,
        )
        for p in inputs
    ]
