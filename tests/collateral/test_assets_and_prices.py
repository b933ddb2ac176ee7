import datetime
import re
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.audit import SYSTEM
from accounts.enums import ApprovalStatus
from accounts.services import approval_request_approve
from collateral import services
from collateral.exceptions import AssetNotEligible, HaircutBelowFloor, UnsupportedCrypto
from collateral.models import Asset, CurrentPrice
from collateral.selectors import current_prices, fx_to_hkd, pool_holdings, pool_valuation_of
from core.exceptions import InvalidInput
from tests.accounts.factories import ClientFactory, StaffFactory
from tests.collateral.factories import asset, fx, price
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


def test_only_btc_and_eth_are_accepted_as_crypto():
    with (
        writes_nothing(),
        pytest.raises(UnsupportedCrypto, match="SOL is not accepted as crypto collateral; only BTC, ETH are"),
    ):
        services.asset_create(
            symbol="SOL",
            name="Solana",
            kind="crypto",
            currency="USD",
            decimals=9,
            haircut="0.8",
            actor=SYSTEM,
        )


@override_settings(CRYPTO_ALLOWLIST=("BTC",))
def test_the_allowlist_is_a_setting():
    with writes_nothing(), pytest.raises(UnsupportedCrypto, match="only BTC are"):
        asset("ETH")


def test_a_crypto_haircut_below_the_floor_is_refused():
    with (
        writes_nothing(),
        pytest.raises(HaircutBelowFloor, match=re.escape("at least 60%; 59.99% was asked for BTC")),
    ):
        asset("BTC", haircut="0.5999")


@pytest.mark.parametrize(
    ("haircut", "message"),
    [
        ("1.5", "between 0 and 1"),
        ("-0.1", "cannot be negative"),
        ("0.12345", "more than 4 decimal places"),
        ("x", "is not an amount"),
    ],
)
def test_a_haircut_must_be_a_fraction(haircut, message):
    with writes_nothing(), pytest.raises(InvalidInput, match=message):
        asset("0700.HK", haircut=haircut)


def test_a_haircut_changes_only_through_four_eyes():
    btc = asset("BTC")
    maker, checker = StaffFactory(role="Risk officer"), StaffFactory(role="Risk officer")
    with pytest.raises(InvalidInput, match="only through an approval request"):
        services.asset_update(asset=btc, actor=maker, haircut="0.7")
    request = services.haircut_change_request(asset=btc, haircut="0.70", actor=maker, reason="volatility")
    btc.refresh_from_db()
    assert btc.haircut == Decimal("0.6000")
    approval_request_approve(request=request, actor=checker)
    btc.refresh_from_db()
    request.refresh_from_db()
    assert btc.haircut == Decimal("0.7000")
    assert request.status == ApprovalStatus.APPROVED


def test_a_crypto_haircut_request_below_the_floor_is_refused():
    eth, officer = asset("ETH"), StaffFactory(role="Risk officer")
    with writes_nothing(), pytest.raises(HaircutBelowFloor):
        services.haircut_change_request(asset=eth, haircut="0.55", actor=officer)


def test_the_newest_observation_is_the_current_price():
    now = timezone.now()
    price("BTC", "100000", observed_at=now)
    price("BTC", "90000", observed_at=now - datetime.timedelta(minutes=1))  # late arrival of an older quote
    assert current_prices()["BTC"].price == Decimal("100000")
    price("BTC", "101000.5", observed_at=now + datetime.timedelta(seconds=1))
    assert current_prices()["BTC"].price == Decimal("101000.5")
    assert CurrentPrice.objects.count() == 1


@pytest.mark.parametrize(
    ("value", "currency", "message"),
    [
        ("0", None, "must be more than zero"),
        ("-5", None, "must be more than zero"),
        ("5", "HKD", "priced in USD, not HKD"),
    ],
)
def test_bad_prices_are_refused(value, currency, message):
    btc = asset("BTC")
    with writes_nothing(), pytest.raises(InvalidInput, match=message):
        services.price_record(asset=btc, price=value, currency=currency, source="test", actor=SYSTEM)


def test_a_future_price_is_refused():
    asset("BTC")
    with writes_nothing(), pytest.raises(InvalidInput, match="in the future"):
        price("BTC", "1", observed_at=timezone.now() + datetime.timedelta(hours=1))


def test_fx_goes_through_usd_when_there_is_no_direct_rate():
    fx("USD", "7.8")
    fx("USDT", "0.999", quote="USD")
    rates = fx_to_hkd()
    assert rates["HKD"] == 1
    assert rates["USD"] == Decimal("7.8")
    assert rates["USDT"] == Decimal("7.7922")


def test_deposits_build_the_pool_from_the_ledger(market):
    pool = services.pool_open(client=ClientFactory(), actor=SYSTEM)
    services.collateral_deposit(pool=pool, asset=market["BTC"], quantity="0.5", actor=SYSTEM)
    services.collateral_deposit(pool=pool, asset=market["BTC"], quantity="0.25", actor=SYSTEM)
    services.collateral_deposit(pool=pool, asset=market["HKD"], quantity="1000.50", actor=SYSTEM)
    assert pool_holdings(pool) == {"BTC": Decimal("0.75"), "HKD": Decimal("1000.50")}
    valuation = pool_valuation_of(pool)
    assert valuation.market_value == Decimal("586000.50")  # 0.75 × 780,000 + 1,000.50
    assert valuation.margin_value == Decimal("235000.50")  # 585,000 × 0.4 + 1,000.50


def test_a_custody_reference_deposits_once(market):
    pool = services.pool_open(client=ClientFactory(), actor=SYSTEM)
    first = services.collateral_deposit(
        pool=pool, asset=market["ETH"], quantity="2", actor=SYSTEM, external_reference="CUST-1"
    )
    with writes_nothing():
        again = services.collateral_deposit(
            pool=pool, asset=market["ETH"], quantity="2", actor=SYSTEM, external_reference="CUST-1"
        )
    assert first == again
    assert pool_holdings(pool) == {"ETH": Decimal("2")}


@pytest.mark.parametrize(
    ("symbol", "quantity", "message"),
    [
        ("BTC", "0.000000001", "more than 8 decimal places for BTC"),
        ("BTC", "0", "must be more than zero"),
        ("BTC", "-1", "must be more than zero"),
        ("0700.HK", "1.5", "more than 0 decimal places for 0700.HK"),
    ],
)
def test_bad_deposits_are_refused(market, symbol, quantity, message):
    pool = services.pool_open(client=ClientFactory(), actor=SYSTEM)
    with writes_nothing(), pytest.raises(InvalidInput, match=message):
        services.collateral_deposit(pool=pool, asset=market[symbol], quantity=quantity, actor=SYSTEM)


def test_an_ineligible_asset_cannot_be_deposited(market):
    pool = services.pool_open(client=ClientFactory(), actor=SYSTEM)
    services.asset_update(asset=market["0005.HK"], actor=SYSTEM, eligible=False)
    with writes_nothing(), pytest.raises(AssetNotEligible):
        services.collateral_deposit(
            pool=pool, asset=Asset.objects.get(pk="0005.HK"), quantity="400", actor=SYSTEM
        )
