from decimal import Decimal

import pytest

from accounts.audit import SYSTEM
from collateral.selectors import current_prices, fx_to_hkd
from collateral.services import PriceBatchRefused, PriceRow, prices_record_bulk
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


def test_a_good_batch_records_prices_and_fx(market):
    counts = prices_record_bulk(
        rows=[PriceRow("0700.HK", "412.2"), PriceRow("0005.hk", "101", "HKD"), PriceRow("USD/HKD", "7.7850")],
        source="market-data",
        actor=SYSTEM,
    )
    assert counts == {"prices": 2, "fx_rates": 1, "held": []}
    prices = current_prices()
    assert prices["0700.HK"].price == Decimal("412.2")
    assert prices["0005.HK"].source == "market-data"
    assert fx_to_hkd()["USD"] == Decimal("7.785")


def test_a_batch_with_any_bad_row_is_refused_whole_with_every_bad_row_listed(market):
    rows = [
        PriceRow("0700.HK", "412.2", line=2),
        PriceRow("NOPE.HK", "1", line=3),
        PriceRow("0005.HK", "-1", line=4),
        PriceRow("0005.HK", "12", "USD", line=5),
        PriceRow("BTC", "90000", line=6),
        PriceRow("HKD", "1", line=7),
        PriceRow("EUR/HKD", "8.5", line=8),
        PriceRow("", "1", line=9),
        PriceRow("0700.HK", "four hundred", line=10),
    ]
    with writes_nothing(), pytest.raises(PriceBatchRefused) as refusal:
        prices_record_bulk(rows=rows, source="file", actor=SYSTEM)
    assert [str(problem) for problem in refusal.value.problems] == [
        "line 3 (NOPE.HK): there is no asset NOPE.HK",
        "line 4 (0005.HK): price: must be more than zero, not -1.",
        "line 5 (0005.HK): 0005.HK is priced in HKD, not USD",
        "line 6 (BTC): BTC is priced by the crypto oracle, not pushed",
        "line 7 (HKD): HKD is cash: its price is 1 HKD",
        "line 8 (EUR/HKD): EUR/HKD is not an FX pair of HKD, USD, USDT",
        "line 9 (no symbol): the symbol is empty",
        "line 10 (0700.HK): price: 'four hundred' is not an amount (plain digits with an optional decimal point, e.g. 1250.50).",
    ]
    assert current_prices()["0700.HK"].price == Decimal("400")
