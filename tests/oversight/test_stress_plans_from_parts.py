"""The forced-sale plans a crypto shock writes with the rows, from the pools' stored fixed parts (stress.sql, piece
``fast``), against the Python planner's: to the cent and the lot, on random books and on the pools where that
plan must step aside for the planner of the positions (docs/stress-tests.md)."""

import random
from decimal import Decimal as D

import pytest

from accounts.audit import SYSTEM
from collateral.services import asset_update
from financing.lending.services import drawdown_create
from financing.models import Facility, MarginPolicy
from financing.monitoring.sweep import facility_figures, sweep_run
from oversight.models import StressResult
from oversight.stress import stress_run
from tests.financing.factories import facility_with_pool
from tests.oversight.factories import random_book, scenario

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_lookback(settings):
    """The postings of the set-up are older than the sweep that follows them: its fixed parts hold."""
    settings.SWEEP_POSTING_LOOKBACK_SECONDS = 0


FIRM = ("facilities", "by_status_after", "market_value_after", "margin_value_after", "amount_due", "sale_proceeds",
        "shortfall", "lending_after_sales", "sale_volume")  # fmt: skip


def plans(run):
    return {
        r.facility_id: (r.status_after, r.sale_plan, r.sale_proceeds, r.ratio_after_sale, r.shortfall)
        for r in StressResult.objects.filter(run=run, status_after__in=["margin_call", "forced_sale"])
    }


def both_ways(monkeypatch, stressed):
    """The run as made (plans with the rows where they can be), then with every plan by the Python planner."""
    sql_run = stress_run(scenario=stressed, actor=SYSTEM)
    monkeypatch.setattr("oversight.stress.planned_in_sql", lambda: False)
    pure_run = stress_run(scenario=stressed, actor=SYSTEM)
    monkeypatch.undo()
    return sql_run, pure_run


@pytest.mark.parametrize(
    ("seed", "limits", "shocks", "sale_cost"),
    [
        (31, {}, {"crypto": "-0.65", "ETH": "-0.75"}, "0.015"),
        (32, {"0700.HK": "0.35", "0005.HK": "0.25"}, {"crypto": "-0.6"}, None),  # cuts bind in many pools
        (33, {"0005.HK": ""}, {"BTC": "-0.8", "ETH": "-0.5"}, "0.03"),  # no cut anywhere
    ],
)
def test_plans_written_with_the_rows_equal_the_planners(market, monkeypatch, seed, limits, shocks, sale_cost):
    random_book(market, facilities=80, seed=seed)
    for symbol, limit in limits.items():
        asset_update(asset=market[symbol], actor=SYSTEM, concentration_limit=limit)
    sweep_run(trigger="test")  # the fixed parts, on the current basis
    sql_run, pure_run = both_ways(monkeypatch, scenario(shocks, sale_cost=sale_cost))
    planned = plans(pure_run)
    assert plans(sql_run) == planned
    assert len(planned) >= 15
    assert {f: getattr(sql_run, f) for f in FIRM} == {f: getattr(pure_run, f) for f in FIRM}
    # Both ways of planning were taken: with the rows from the fixed parts, and from the positions after them.
    assert 0 < sql_run.phases["plans_with_rows"] < len(planned)
    assert sql_run.phases["plans_in_python"] == 0


def pool(holdings, *, share, policy=None):
    """A facility drawn to ``share`` of its pool's margin value."""
    facility = facility_with_pool(holdings=holdings, limit="50000000", credit_limit="50000000")
    if policy is not None:
        Facility.objects.filter(pk=facility.pk).update(policy=policy)
    amount = (facility_figures([facility.client_id])[0].margin_value * share).quantize(D("1"))
    if amount >= 1:
        drawdown_create(facility=facility, amount=str(amount), actor=SYSTEM)
    return facility


def test_each_pool_is_planned_where_its_part_tells_the_whole_story(market, monkeypatch):
    # Tencent without a limit: what a pool holds besides its crypto is never cut once the crypto is sold. HSBC's
    # cut binds below a pool value of 3⅓ times what it holds.
    asset_update(asset=market["0700.HK"], actor=SYSTEM, concentration_limit="")
    asset_update(asset=market["0005.HK"], actor=SYSTEM, concentration_limit="0.30")
    ordered = MarginPolicy.objects.create(
        name="ETH first", target=D("0.70"), sale_cost_rate=D("0.0100"), sale_order=["ETH", "BTC"]
    )
    # A call below a ratio of 1: the pool's HKD can cover the whole debt, and the crypto need not be sold.
    early_call = MarginPolicy.objects.create(
        name="Early call", max_advance=D("0.78"), warning=D("0.79"), margin_call=D("0.80"), target=D("0.70"),
        sale_cost_rate=D("0.0100"),
    )  # fmt: skip
    cash_cures = pool({"HKD": "2000000", "BTC": "1"}, share=D("0.78"), policy=early_call)
    btc_then_eth = pool({"BTC": "0.5", "ETH": "30", "0700.HK": "200"}, share=D("0.84"))
    with_usd = pool({"BTC": "0.3", "ETH": "60", "USD": "40000", "0700.HK": "300"}, share=D("0.84"))
    # HSBC's cut does not bind at the shocked prices, but would once the BTC is sold: the planner sells it whole
    # only if the target is reached with the cut in place.
    cut_after = pool({"BTC": "1", "0005.HK": "2500", "0700.HK": "1000"}, share=D("0.84"))
    own_order = pool({"BTC": "1", "ETH": "20", "0700.HK": "500"}, share=D("0.84"), policy=ordered)
    sweep_run(trigger="test")
    sql_run, pure_run = both_ways(monkeypatch, scenario({"crypto": "-0.5"}, sale_cost="0.02"))
    planned = plans(pure_run)
    assert plans(sql_run) == planned
    assert {f: getattr(sql_run, f) for f in FIRM} == {f: getattr(pure_run, f) for f in FIRM}
    every = [cash_cures, btc_then_eth, with_usd, cut_after, own_order]
    assert set(planned) == {f.pk for f in every}  # a sale reaches each of them
    assets = {f.pk: [sale["asset"] for sale in planned[f.pk][1]] for f in every}
    assert assets[cash_cures.pk] == ["HKD"]
    assert assets[btc_then_eth.pk] == ["BTC", "ETH"]
    assert assets[with_usd.pk] == ["BTC", "ETH"]
    assert assets[cut_after.pk] == ["BTC"]
    assert assets[own_order.pk][0] == "ETH"
    # Written with their rows: the cash that cures, BTC then ETH, the pool with dollars; the other two are planned
    # from their positions (a cut that binds after the sale, a sale order of the policy's own).
    assert sql_run.phases["plans_with_rows"] == 3


def test_a_pool_whose_crypto_cannot_reach_the_target_is_planned_from_its_positions(market, monkeypatch):
    only_btc = pool({"BTC": "2"}, share=D("0.84"))
    crypto_and_hkd = pool({"BTC": "1", "ETH": "10", "HKD": "5000"}, share=D("0.84"))
    sweep_run(trigger="test")
    sql_run, pure_run = both_ways(monkeypatch, scenario({"crypto": "-0.9"}, sale_cost="0.02"))
    planned = plans(pure_run)
    assert plans(sql_run) == planned
    assert set(planned) == {only_btc.pk, crypto_and_hkd.pk}
    assert all(shortfall > 0 for *_, shortfall in planned.values())  # everything sold, debt left
    assert sql_run.phases["plans_with_rows"] == 0
    assert sql_run.shortfall == pure_run.shortfall > 0


# Assets changed after the book is drawn (before the sweep that stores the parts), the shock and the sale cost.
ODD_TERMS = {
    "small lots": ({"BTC": {"lot_size": "0.001"}, "ETH": {"lot_size": "0.01"}}, {"crypto": "-0.6"}, "0.02"),
    "big lots": ({"BTC": {"lot_size": "0.1"}, "ETH": {"lot_size": "1"}}, {"BTC": "-0.55", "ETH": "-0.75"}, "0.01"),
    "ineligible ETH": ({"ETH": {"eligible": False}}, {"BTC": "-0.7", "ETH": "-0.2"}, None),
    # A sale cost that leaves BTC's slope just at the least the search takes, and one just under it.
    "flat slope": ({}, {"crypto": "-0.5"}, "0.65"),
    "flatter slope": ({}, {"crypto": "-0.5"}, "0.655"),
    "BTC limited": ({"BTC": {"concentration_limit": "0.9"}}, {"crypto": "-0.6"}, None),
    "one limit": ({"0700.HK": {"concentration_limit": ""}, "0005.HK": {"concentration_limit": "0.3"}},
                  {"crypto": "-0.45"}, "0.005"),
}  # fmt: skip


@pytest.mark.parametrize("terms", list(ODD_TERMS))
def test_plans_under_odd_terms_and_policies_equal_the_planners(market, monkeypatch, terms):
    changes, shocks, sale_cost = ODD_TERMS[terms]
    rng = random.Random(sum(map(ord, terms)))
    low_target = MarginPolicy.objects.create(name="Low target", target=D("0.50"), sale_cost_rate=D("0.0100"))
    early_call = MarginPolicy.objects.create(
        name="Early call", max_advance=D("0.78"), warning=D("0.79"), margin_call=D("0.80"), target=D("0.70"),
        sale_cost_rate=D("0.0300"),
    )  # fmt: skip
    for _ in range(70):
        holdings = {}
        for symbol, high, places in [("BTC", 3, 8), ("ETH", 40, 18), ("0700.HK", 5000, 0), ("0005.HK", 9000, 0),
                                     ("HKD", 500000, 2), ("USD", 50000, 2)]:  # fmt: skip
            if rng.random() < 0.55:
                holdings[symbol] = str(D(rng.randint(1, 10**places * high)) / D(10**places))
        policy = rng.choice([None, None, low_target, early_call])
        share = D(rng.randint(45, 77 if policy is early_call else 84)) / 100
        pool(holdings, share=share, policy=policy)
    for symbol, fields in changes.items():
        asset_update(asset=market[symbol], actor=SYSTEM, **fields)
    sweep_run(trigger="test")
    sql_run, pure_run = both_ways(monkeypatch, scenario(shocks, sale_cost=sale_cost))
    assert plans(sql_run) == plans(pure_run)
    assert {f: getattr(sql_run, f) for f in FIRM} == {f: getattr(pure_run, f) for f in FIRM}
    assert sql_run.phases["plans_in_python"] == 0
