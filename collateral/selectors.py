"""Reads for collateral: prices, FX, positions and the valuation of a pool."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import OuterRef, Subquery

from collateral.calculations import PoolValuation, PositionInput, pool_valuation
from collateral.models import Asset, CollateralPool, CurrentPrice, FxRate
from ledger.selectors import balances_of


@dataclass(frozen=True)
class Quote:
    price: Decimal
    currency: str
    source: str
    observed_at: datetime.datetime


def current_prices(symbols: list[str] | None = None) -> dict[str, Quote]:
    rows = CurrentPrice.objects.select_related("price")
    if symbols is not None:
        rows = rows.filter(asset_id__in=symbols)
    return {
        row.asset_id: Quote(row.price.price, row.price.currency, row.price.source, row.price.observed_at)
        for row in rows
    }


def fx_rates_latest() -> dict[tuple[str, str], FxRate]:
    latest = FxRate.objects.filter(currency=OuterRef("currency"), quote=OuterRef("quote")).order_by(
        "-observed_at", "-pk"
    )
    rows = FxRate.objects.filter(pk=Subquery(latest.values("pk")[:1]))
    return {(rate.currency, rate.quote): rate for rate in rows}


def fx_to_hkd() -> dict[str, Decimal]:
    """HKD per unit of each currency we can convert: direct rates, or through USD (USDT/USD × USD/HKD)."""
    rates = {pair: rate.rate for pair, rate in fx_rates_latest().items()}
    result = {"HKD": Decimal(1)}
    for (currency, quote), rate in rates.items():
        if quote == "HKD":
            result[currency] = rate
    for (currency, quote), rate in rates.items():
        if quote == "USD" and currency not in result and "USD" in result:
            result[currency] = rate * result["USD"]
    return result


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
