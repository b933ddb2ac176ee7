"""The shock arithmetic, by hand: which shock an asset gets, shocked prices and FX rates, shares."""

from decimal import Decimal as D

import pytest

from oversight.calculations import Shocks, hkd_per_unit, share, shocked, shocked_rates, shocks_parse

ASSETS = {"BTC": "crypto", "ETH": "crypto", "0700.HK": "security", "HKD": "cash", "USD": "cash"}
CURRENCIES = ["HKD", "USD", "USDT"]


def parse(raw):
    return shocks_parse(raw, assets=ASSETS, currencies=CURRENCIES)


def test_an_assets_own_shock_wins_over_its_class():
    shocks = parse({"crypto": "-0.50", "BTC": "-0.396", "security": "-0.22", "USD/HKD": "+0.005"})
    assert shocks.for_asset("BTC", "crypto") == D("-0.396")
    assert shocks.for_asset("ETH", "crypto") == D("-0.50")
    assert shocks.for_asset("0700.HK", "security") == D("-0.22")
    assert shocks.for_asset("HKD", "cash") == D(0)
    assert shocks.fx == {("USD", "HKD"): D("0.005")}
    assert parse(shocks.as_json()) == shocks


def test_shocked_prices_and_rates_are_exact():
    assert shocked(D("97123.45678"), D("-0.396")) == D("58662.56789512")  # 97,123.45678 × 0.604
    rates = shocked_rates(
        {("USD", "HKD"): D("7.8"), ("USDT", "USD"): D("0.9990")}, parse({"USD/HKD": "0.005"})
    )
    assert rates == {("USD", "HKD"): D("7.839"), ("USDT", "USD"): D("0.9990")}
    # USDT through USD: 0.999 × 7.839 = 7.831161
    assert hkd_per_unit(rates) == {"HKD": 1, "USD": D("7.839"), "USDT": D("7.831161")}


def test_shares_round_half_up_to_four_places():
    assert share(D("125"), D("500")) == D("0.2500")
    assert share(D("1"), D("3")) == D("0.3333")
    assert share(D("2"), D("3")) == D("0.6667")
    assert share(D("1"), None) is None
    assert share(D("1"), D("0")) is None


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"DOGE": "-0.5"}, "DOGE: not an asset"),
        ({"HKD": "-0.5"}, "HKD is cash: shock its FX rate instead"),
        ({"BTC": -0.5}, "not a floating-point number"),
        ({"BTC": "minus half"}, "is not a number"),
        ({"BTC": "-1"}, "out of range"),
        ({"BTC": "NaN"}, "is not a number"),
        ({"EUR/HKD": "0.01"}, "not an FX pair of two known currencies"),
        ({"USD/USD": "0.01"}, "not an FX pair of two known currencies"),
        (["BTC"], "Shocks are an object"),
    ],
)
def test_bad_shocks_are_refused_by_name(raw, words):
    with pytest.raises(ValueError, match=words):
        parse(raw)


def test_no_shock_means_no_change():
    assert Shocks().for_asset("BTC", "crypto") == 0
