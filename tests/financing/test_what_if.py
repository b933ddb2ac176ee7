"""Trigger prices and price shocks, checked against the sweep's own valuation."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collateral.calculations import PositionInput, pool_valuation, ratio_above, ratio_at_or_above
from financing.calculations import Thresholds
from financing.enums import MarginStatus
from financing.what_if import SECURITIES, ladder_triggers, outcome, shocked, trigger_price

THRESHOLDS = Thresholds(
    max_advance=Decimal("0.85"),
    warning=Decimal("0.90"),
    margin_call=Decimal("1.00"),
    forced_sale=Decimal("1.20"),
    target=Decimal("0.85"),
)


def btc(quantity="1", price="100000"):
    return PositionInput(
        "BTC", Decimal(quantity), Decimal(price), Decimal("7.8"), Decimal("0.60"), kind="crypto"
    )


def tencent(quantity="1000", price="400"):
    return PositionInput(
        "0700.HK",
        Decimal(quantity),
        Decimal(price),
        Decimal(1),
        Decimal("0.30"),
        Decimal("0.50"),
        kind="security",
    )


def hkd(amount):
    return PositionInput("HKD", Decimal(amount), Decimal(1), Decimal(1), Decimal(0), kind="cash", decimals=2)


def test_one_btc_drawn_to_85_percent_has_its_three_trigger_prices_to_the_cent():
    """LV = p × 7.8 × 0.4 = 3.12p against a debt of 265,200."""
    found = ladder_triggers([btc()], "BTC", debt=Decimal("265200"), thresholds=THRESHOLDS)
    assert found[MarginStatus.WARNING].price == Decimal("94444.44")  # 265,200 / 0.9 / 3.12
    assert found[MarginStatus.MARGIN_CALL].price == Decimal("84999.99")  # strictly above 100%: not at 85,000
    assert found[MarginStatus.FORCED_SALE].price == Decimal("70833.33")  # 265,200 / 1.2 / 3.12
    assert found[MarginStatus.FORCED_SALE].change == Decimal("-0.2917")
    assert not any(t.already for t in found.values())


def test_a_level_reached_already_and_one_no_price_alone_reaches():
    assert trigger_price([btc()], "BTC", debt=Decimal("290000"), threshold=Decimal("0.90")).already
    covered = [btc(), hkd("1000000")]  # the cash alone covers the debt
    never = trigger_price(covered, "BTC", debt=Decimal("265200"), threshold=Decimal("0.90"))
    assert (never.price, never.already) == (None, False)
    nothing = trigger_price([btc()], "ETH", debt=Decimal("265200"), threshold=Decimal("0.90"))
    assert (nothing.price, nothing.already) == (None, False)


@given(
    debt=st.decimals(min_value=1000, max_value=2000000, places=2),
    btc_quantity=st.decimals(min_value="0.01", max_value=20, places=8),
    shares=st.integers(min_value=0, max_value=20).map(lambda n: n * 100),
    threshold=st.sampled_from([Decimal("0.90"), Decimal("1.00"), Decimal("1.20")]),
    strictly=st.booleans(),
)
def test_the_trigger_is_the_highest_cent_at_which_the_sweep_s_valuation_reaches_the_level(
    debt, btc_quantity, shares, threshold, strictly
):
    """With a concentration limit in play (Tencent capped at half the pool) the closed form is only a guess."""
    positions = [btc(btc_quantity), tencent(shares)] if shares else [btc(btc_quantity)]
    found = trigger_price(positions, "BTC", debt=debt, threshold=threshold, strictly_above=strictly)
    reached = ratio_above if strictly else ratio_at_or_above

    def at(price):
        moved = [
            PositionInput(**{**p.__dict__, "price": price}) if p.symbol == "BTC" else p for p in positions
        ]
        return reached(debt, pool_valuation(moved).margin_value, threshold)

    if found.already:
        assert at(Decimal("100000"))
    elif found.price is None:
        assert not at(Decimal(0))
    else:
        assert at(found.price)
        assert not at(found.price + Decimal("0.01"))


def test_a_shock_moves_only_what_it_names_and_the_outcome_is_the_sweep_s():
    positions = [btc(), tencent(), hkd("1000")]
    moved = shocked(positions, {"BTC": Decimal("-0.30"), SECURITIES: Decimal("0.10")})
    assert [p.price for p in moved] == [Decimal("70000.00"), Decimal("440.00"), Decimal(1)]
    result = outcome([btc()], debt=Decimal("265200"), thresholds=THRESHOLDS)
    assert (result.margin_ratio, result.status) == (Decimal("0.85000000"), MarginStatus.OK)
    after = outcome(
        shocked([btc()], {"BTC": Decimal("-0.30")}), debt=Decimal("265200"), thresholds=THRESHOLDS
    )
    assert after.margin_value == Decimal("218400.00")
    assert after.status == MarginStatus.FORCED_SALE
    assert after.cure.repayment == Decimal("79560.00")  # 265,200 − 0.85 × 218,400


@pytest.mark.parametrize("shock", ["-1.5"])
def test_a_price_never_goes_below_zero(shock):
    assert shocked([btc()], {"BTC": Decimal(shock)})[0].price == 0
