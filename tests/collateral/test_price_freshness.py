"""Whether a price may be acted on: no forced sale runs on a stale price (docs/design.md, "Prices")."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.audit import SYSTEM
from collateral.models import CurrentPrice, FxRate
from collateral.selectors import Freshness, fx_freshness, price_freshness, stale_assets
from collateral.services import fx_rate_record
from tests.collateral.factories import asset, price

pytestmark = pytest.mark.django_db

SECOND = datetime.timedelta(seconds=1)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


@pytest.fixture(autouse=True)
def limits(settings):
    settings.PRICE_STALENESS_SECONDS = 60
    settings.SECURITY_PRICE_MAX_AGE = 4 * DAY
    settings.FX_MAX_AGE = 4 * DAY


def usd_rate(observed_at: datetime.datetime) -> FxRate:
    return fx_rate_record(
        currency="USD", rate=Decimal("7.8"), source="test", actor=SYSTEM, observed_at=observed_at
    )


def observed(symbol: str) -> datetime.datetime:
    return CurrentPrice.objects.select_related("price").get(asset_id=symbol).price.observed_at


def fx_observed(currency: str) -> datetime.datetime:
    return FxRate.objects.filter(currency=currency, quote="HKD").latest("observed_at").observed_at


def test_a_crypto_price_is_fresh_up_to_the_staleness_limit_and_stale_after(market):
    btc = market["BTC"]
    at = observed("BTC")

    assert price_freshness(btc, now=at + 60 * SECOND) == Freshness(True, "")
    assert price_freshness(btc, now=at + 61 * SECOND) == (
        False,
        "the price of BTC is 61 s old; the limit is 60 s",
    )


def test_a_crypto_price_marked_stale_is_stale_however_young(market):
    CurrentPrice.objects.filter(asset_id="ETH").update(
        is_stale=True,
        stale_reason="only 1 of 3 venues gave a fresh quote within 5% of the median; quorum is 2",
    )

    assert price_freshness(market["ETH"]) == (
        False,
        "the price of ETH is marked stale: only 1 of 3 venues gave a fresh quote within 5% of the median; "
        "quorum is 2",
    )


def test_a_security_price_spans_a_long_weekend_but_not_more(market):
    tencent = market["0700.HK"]
    at = observed("0700.HK")

    assert price_freshness(tencent, now=at + 4 * DAY) == (True, "")
    assert price_freshness(tencent, now=at + 5 * DAY + datetime.timedelta(hours=2)) == (
        False,
        "the price of 0700.HK is 5 days 2 h old; the limit is 4 days",
    )


def test_an_asset_priced_in_usd_needs_a_fresh_usd_rate_too(db):
    now = timezone.now()
    usd_rate(now - 5 * DAY)
    price("BTC", "97000", observed_at=now - 10 * SECOND)

    assert price_freshness(asset("BTC"), now=now) == (
        False,
        "BTC is priced in USD, and the USD/HKD rate is 5 days old; the limit is 4 days",
    )


def test_hkd_cash_is_always_fresh_and_usd_cash_needs_a_fresh_rate(market):
    far_later = fx_observed("USD") + 30 * DAY

    assert price_freshness(market["HKD"], now=far_later) == (True, "")
    assert price_freshness(market["USD"]) == (True, "")
    assert price_freshness(market["USD"], now=far_later) == (
        False,
        "the USD/HKD rate is 30 days old; the limit is 4 days",
    )


def test_an_asset_without_a_price_or_rate_is_not_fresh(db):
    hsbc = asset("0005.HK")
    usd = asset("USD")

    assert price_freshness(hsbc) == (False, "0005.HK has no price")
    assert price_freshness(usd) == (False, "there is no FX rate from USD to HKD")


def test_usdt_is_converted_through_usd_and_needs_both_rates_fresh(db):
    at = timezone.now() - 10 * SECOND
    usd_rate(at)
    fx_rate_record(
        currency="USDT", quote="USD", rate=Decimal("0.9995"), source="test", actor=SYSTEM, observed_at=at
    )

    assert fx_freshness("USDT", now=at + DAY) == (True, "")
    assert fx_freshness("USDT", now=at + 5 * DAY) == (
        False,
        "the USDT/USD rate is 5 days old; the limit is 4 days; "
        "the USD/HKD rate is 5 days old; the limit is 4 days",
    )


def test_stale_assets_lists_every_asset_that_may_not_be_acted_on_with_the_reason(db):
    at = timezone.now() - 10 * SECOND
    usd_rate(at)
    for symbol, value in [("BTC", "97000"), ("ETH", "3500"), ("0700.HK", "401"), ("0005.HK", "99")]:
        price(symbol, value, observed_at=at)
    asset("HKD")
    asset("USD")

    assert stale_assets(now=at) == {}
    assert stale_assets(now=at + 47 * HOUR) == {
        "BTC": "the price of BTC is 47 h old; the limit is 60 s",
        "ETH": "the price of ETH is 47 h old; the limit is 60 s",
    }
    assert stale_assets(now=at + 5 * DAY) == {
        "BTC": "the price of BTC is 5 days old; the limit is 60 s; BTC is priced in USD, and the USD/HKD "
        "rate is 5 days old; the limit is 4 days",
        "ETH": "the price of ETH is 5 days old; the limit is 60 s; ETH is priced in USD, and the USD/HKD "
        "rate is 5 days old; the limit is 4 days",
        "0700.HK": "the price of 0700.HK is 5 days old; the limit is 4 days",
        "0005.HK": "the price of 0005.HK is 5 days old; the limit is 4 days",
        "USD": "the USD/HKD rate is 5 days old; the limit is 4 days",
    }
