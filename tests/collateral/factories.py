"""Assets, prices and pools built through the services, as the platform itself builds them."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.utils import timezone

from accounts.audit import SYSTEM
from collateral import services
from collateral.models import Asset

STANDARD_ASSETS = {
    # symbol: (name, kind, currency, decimals, haircut, lot, concentration limit, sale rank)
    "HKD": ("Hong Kong dollar", "cash", "HKD", 2, "0", "0.01", None, 90),
    "USD": ("US dollar", "cash", "USD", 2, "0.02", "0.01", None, 91),
    "BTC": ("Bitcoin", "crypto", "USD", 8, "0.60", "0.00000001", None, 1),
    "ETH": ("Ether", "crypto", "USD", 18, "0.65", "0.000000000000000001", None, 2),
    "0700.HK": ("Tencent Holdings", "security", "HKD", 0, "0.30", "100", "0.50", 10),
    "0005.HK": ("HSBC Holdings", "security", "HKD", 0, "0.25", "400", "0.50", 11),
}


def asset(symbol: str, **overrides) -> Asset:
    existing = Asset.objects.filter(pk=symbol).first()
    if existing is not None:
        return existing
    name, kind, currency, decimals, haircut, lot, limit, rank = STANDARD_ASSETS[symbol]
    arguments = {
        "symbol": symbol,
        "name": name,
        "kind": kind,
        "currency": currency,
        "decimals": decimals,
        "haircut": haircut,
        "lot_size": lot,
        "concentration_limit": limit,
        "sale_rank": rank,
        "actor": SYSTEM,
    } | overrides
    return services.asset_create(**arguments)


def price(
    symbol: str,
    value: str,
    *,
    observed_at: datetime.datetime | None = None,
    source: str = "test",
    band_check: bool = False,
):
    """A price the platform uses at once, as the oracle's or a confirmed one (``band_check=True``: a price
    pushed by a system, held when it moves too far)."""
    return services.price_record(
        asset=asset(symbol),
        price=Decimal(value),
        source=source,
        actor=SYSTEM,
        observed_at=observed_at or timezone.now(),
        band_check=band_check,
    )


def fx(currency: str, rate: str, quote: str = "HKD", *, band_check: bool = False):
    return services.fx_rate_record(
        currency=currency, quote=quote, rate=Decimal(rate), source="test", actor=SYSTEM, band_check=band_check
    )


def standard_market() -> dict[str, Asset]:
    """BTC at US$100,000, ETH at US$4,000, Tencent at HK$400, HSBC at HK$100, USD/HKD 7.8."""
    assets = {symbol: asset(symbol) for symbol in STANDARD_ASSETS}
    fx("USD", "7.8")
    price("BTC", "100000")
    price("ETH", "4000")
    price("0700.HK", "400")
    price("0005.HK", "100")
    return assets
