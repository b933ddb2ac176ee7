"""Stress runs on the live book: worked examples to the cent, zero shocks reproduce the book, the SQL path
agrees with the pure calculations under any shock, and a run writes nothing to the live tables."""

import random
from decimal import Decimal as D

import pytest

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from collateral.services import asset_update
from core.exceptions import InvalidInput, PermissionRefused
from financing.lending.services import drawdown_create
from financing.models import (
    Facility,
    ForcedSale,
    MarginCall,
    MarginPolicy,
    MarginState,
    RatioSnapshot,
    SaleOrder,
)
from financing.monitoring import sweep as sweep_module
from financing.monitoring.cycle import monitoring_cycle_run
from financing.monitoring.sweep import facility_figures, sweep_run, valuations_of
from ledger.models import Transaction
from notifications.models import Event, OutboxMessage
from oversight.enums import StressRunStatus
from oversight.models import StressResult, StressScenario
from oversight.stress import stress_run, stress_scenario_create
from tests.accounts.factories import StaffFactory
from tests.financing.factories import facility_with_pool
from tests.oversight.factories import random_book, scenario

pytestmark = pytest.mark.django_db


def rows(run):
    return {
        r.facility_id: (r.market_value, r.margin_value, r.debt, r.ratio_after, r.status_after)
        for r in StressResult.objects.filter(run=run)
    }


def test_a_btc_crash_on_one_facility_worked_by_hand(market):
    # 1 BTC at US$100,000 × 7.8 = HK$780,000, haircut 60%: margin value 312,000; debt 250,000: ratio 80.13%.
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    sweep_run(trigger="test")
    run = stress_run(scenario=scenario({"BTC": "-0.40"}), actor=SYSTEM)
    row = run.results.get()
    assert (row.ratio_before, row.status_before) == (D("0.80128205"), "ok")
    # BTC at US$60,000: market value 468,000, margin value 187,200; 250,000 / 187,200 = 133.55%: a forced sale.
    assert (row.market_value, row.margin_value, row.debt) == (D("468000.00"), D("187200.00"), D("250000.00"))
    assert (row.ratio_after, row.status_after) == (D("1.33547009"), "forced_sale")
    assert row.repayment_to_cure == D("90880.00")  # 250,000 − 0.85 × 187,200
    # x ≥ 90,880 / (0.995 − 0.85 × 0.4) = HK$138,748.09 = 0.29647029 BTC at HK$468,000; a few satoshis more
    # because the market value sold, the proceeds and the margin value left are each rounded to the cent:
    # 0.29647033 BTC is HK$138,748.11 (half-up), proceeds 138,054.36 (× 0.995, down): debt 111,945.64 is above
    # 0.85 × 131,700.75 = 111,945.6375; 0.29647034 BTC is HK$138,748.12, proceeds 138,054.37: debt 111,945.63.
    [sale] = row.sale_plan
    assert sale["asset"] == "BTC"
    assert D(sale["quantity"]) == D("0.29647034")
    assert D(sale["market_value"]) == D("138748.12")
    assert D(sale["proceeds"]) == D("138054.37")
    assert row.sale_proceeds == D("138054.37")
    # After: 0.70352966 BTC worth 329,251.88, margin value 131,700.75: 111,945.63 / 131,700.75 = 84.999994%.
    assert row.ratio_after_sale == D("0.84999994")
    assert row.shortfall == 0
    assert run.by_status_after == {"forced_sale": 1}
    assert run.amount_due == D("90880.00")
    assert run.sale_volume["BTC"] == {
        "quantity": "0.29647034",
        "market_value": "138748.12",
        "daily_liquidity": "500",
        "share_of_daily_liquidity": "0.0006",  # of 500 BTC a day
    }
    assert (run.lending, run.lending_after_sales) == (D("250000.00"), D("111945.63"))


def test_concentration_is_cut_again_at_the_shocked_prices(market):
    # 1 BTC (HK$780,000) and 2,000 Tencent (HK$800,000, haircut 30%, limit 50% of the pool).
    facility = facility_with_pool(holdings={"BTC": "1", "0700.HK": "2000"})
    drawdown_create(facility=facility, amount="500000.00", actor=SYSTEM)
    sweep_run(trigger="test")
    run = stress_run(scenario=scenario({"BTC": "-0.40"}), actor=SYSTEM)
    row = run.results.get()
    # Before: pool 1,580,000; Tencent counted up to 790,000 → 553,000; BTC 312,000: margin value 865,000.
    assert row.margin_value_before == D("865000.00")
    # After: BTC 468,000, pool 1,268,000; Tencent counted up to 634,000 → 443,800; BTC 187,200: 631,000.
    assert (row.market_value, row.margin_value) == (D("1268000.00"), D("631000.00"))
    assert row.ratio_after == D("0.79239303")  # 500,000 / 631,000
    assert row.status_after == "ok"
    assert row.sale_plan == []


def test_a_pool_that_cannot_cover_its_debt_leaves_a_shortfall(market):
    # 1 BTC, debt 250,000; BTC −80%: HK$156,000 of BTC sold at a 2% cost brings 152,880: 97,120 left unsecured.
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    run = stress_run(scenario=scenario({"crypto": "-0.80"}, sale_cost="0.02"), actor=SYSTEM)
    row = run.results.get()
    assert row.status_after == "forced_sale"
    assert [(s["asset"], D(s["quantity"])) for s in row.sale_plan] == [("BTC", D("1"))]
    assert row.sale_proceeds == D("152880.00")
    assert row.shortfall == D("97120.00")
    assert run.shortfall == D("97120.00")
    assert run.capital == D("200000000.00")


def test_lending_against_five_times_capital(market, settings):
    facility = facility_with_pool(holdings={"BTC": "1", "HKD": "100000.00"})
    drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    settings.BROKER_CAPITAL_HKD = D("100000")  # the capital now, after the loan was made
    run = stress_run(scenario=scenario({"BTC": "-0.60"}), actor=SYSTEM)
    row = run.results.get()
    # The pool's HKD 100,000 repays first, as the live planner does; then BTC is sold.
    assert row.sale_plan[0] == {**row.sale_plan[0], "asset": "HKD", "proceeds": "100000.00"}
    assert (run.lending_cap, run.lending) == (D("500000"), D("250000.00"))
    assert run.lending_after_sales == run.lending - row.sale_proceeds


def test_zero_shocks_reproduce_the_book_to_the_cent_in_sql_and_in_the_calculations(market, monkeypatch):
    random_book(market, facilities=30, seed=20261206)
    sweep_run(trigger="test")
    live = valuations_of(sorted(Facility.objects.values_list("client_id", flat=True)))
    pure = {f.facility_id: f for f in facility_figures(None)}
    sql_run = stress_run(
        scenario=scenario({"BTC": "0", "security": "0", "USD/HKD": "0"}, key="zero"), actor=SYSTEM
    )
    monkeypatch.setattr("oversight.stress.valued_in_sql", lambda: False)
    pure_run = stress_run(scenario=StressScenario.objects.get(key="zero"), actor=SYSTEM)
    expected = {k: tuple(v)[1:] for k, v in pure.items()}
    assert rows(sql_run) == expected
    assert rows(pure_run) == expected
    assert {k: tuple(v)[1:] for k, v in live.items()} == expected
    for row in StressResult.objects.filter(run=sql_run):  # before = as last swept = after
        assert (row.market_value_before, row.margin_value_before, row.debt_before, row.ratio_before,
                row.status_before) == (row.market_value, row.margin_value, row.debt, row.ratio_after,
                                       row.status_after)  # fmt: skip
    assert pure_run.previous == sql_run
    assert sql_run.by_status_before == sql_run.by_status_after


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_under_any_shock_sql_and_the_calculations_agree(market, monkeypatch, seed):
    random_book(market, facilities=15, seed=seed)
    rng = random.Random(seed)
    shocks = {
        "crypto": f"-0.{rng.randint(10, 70)}",
        "ETH": f"-0.{rng.randint(10, 70)}",
        "security": f"-0.{rng.randint(0, 40):02d}",
        "USD/HKD": f"0.00{rng.randint(0, 9)}",
    }
    stressed = scenario(shocks, sale_cost="0.015")
    sql_run = stress_run(scenario=stressed, actor=SYSTEM)
    monkeypatch.setattr("oversight.stress.valued_in_sql", lambda: False)
    pure_run = stress_run(scenario=stressed, actor=SYSTEM)
    assert rows(sql_run) == rows(pure_run)
    sql_plans = {
        r.facility_id: (r.repayment_to_cure, r.sale_plan, r.shortfall) for r in sql_run.results.all()
    }
    pure_plans = {
        r.facility_id: (r.repayment_to_cure, r.sale_plan, r.shortfall) for r in pure_run.results.all()
    }
    assert sql_plans == pure_plans
    assert sql_run.sale_volume == pure_run.sale_volume
    assert sum(sql_run.by_status_after.values()) == 15


def test_a_crypto_shock_values_the_book_from_the_stored_fixed_parts_to_the_cent(
    market, monkeypatch, settings
):
    settings.SWEEP_POSTING_LOOKBACK_SECONDS = (
        0  # the book's postings are older than the sweep: its parts hold
    )
    book = random_book(market, facilities=20, seed=11)
    sweep_run(trigger="test")
    # After the sweep: a client posted to (its state's debt and fixed part are out of date), a facility with no
    # state yet, and a state whose part was worked out on another basis (and would be wrong if used).
    drawdown_create(facility=book[0], amount="1000.00", actor=SYSTEM)
    facility_with_pool(holdings={"BTC": "2", "0700.HK": "3000"})
    MarginState.objects.filter(facility=book[1]).update(
        fixed_basis="another", fixed_market_value=D("1.00"), fixed_margin_value=D("1.00")
    )
    bases = []
    spied = sweep_module._on_the_live_basis
    monkeypatch.setattr(
        sweep_module, "_on_the_live_basis", lambda units: bases.append(spied(units)) or bases[-1]
    )
    crypto = scenario({"crypto": "-0.45", "ETH": "-0.6"}, sale_cost="0.015")
    sql_run = stress_run(scenario=crypto, actor=SYSTEM)
    assert bases[-1] is not None  # valued from the fixed parts where they hold
    monkeypatch.setattr("oversight.stress.valued_in_sql", lambda: False)
    pure_run = stress_run(scenario=crypto, actor=SYSTEM)
    assert len(rows(sql_run)) == 21
    assert rows(sql_run) == rows(pure_run)
    assert plans(sql_run) == plans(pure_run)
    firm = ("facilities", "by_status_before", "by_status_after", "market_value_before", "market_value_after",
            "margin_value_before", "margin_value_after", "amount_due", "sale_proceeds", "shortfall", "lending",
            "lending_after_sales", "sale_volume")  # fmt: skip
    assert {f: getattr(sql_run, f) for f in firm} == {f: getattr(pure_run, f) for f in firm}
    # A shock to anything but the crypto: no stored part holds, every pool is valued from its positions (the
    # debts still the states' but for the client posted to).
    both = scenario({"BTC": "-0.3", "security": "-0.1"}, sale_cost="0.015", key="both")
    pure_run = stress_run(scenario=both, actor=SYSTEM)
    monkeypatch.setattr("oversight.stress.valued_in_sql", lambda: True)
    sql_run = stress_run(scenario=both, actor=SYSTEM)
    assert bases[-1] is None
    assert rows(sql_run) == rows(pure_run)
    assert plans(sql_run) == plans(pure_run)
    assert {f: getattr(sql_run, f) for f in firm} == {f: getattr(pure_run, f) for f in firm}


def plans(run):
    return {
        r.facility_id: (r.sale_plan, r.sale_proceeds, r.ratio_after_sale, r.shortfall)
        for r in run.results.filter(status_after__in=["margin_call", "forced_sale"])
    }


@pytest.mark.parametrize(
    ("seed", "limits"),
    [
        (21, {"0700.HK": "", "0005.HK": ""}),  # no cut anywhere
        (22, {"0700.HK": "0.90", "0005.HK": "0.95"}),  # cuts that bind in a few pools
        (23, {}),  # the standard limits (HSBC 30%): cuts bind in many pools
        (24, {"0700.HK": "0.35", "0005.HK": "0.25"}),  # tight limits: a cut binds in most pools
    ],
)
def test_sale_plans_in_sql_equal_the_python_planners_to_the_cent_and_the_lot(
    market, monkeypatch, seed, limits
):
    book = random_book(market, facilities=45, seed=seed)
    for symbol, limit in limits.items():
        asset_update(asset=market[symbol], actor=SYSTEM, concentration_limit=limit)
    asset_update(asset=market["0005.HK"], actor=SYSTEM, lot_size="7" if seed % 2 else "400")
    rng = random.Random(seed)
    policies = [
        MarginPolicy.objects.create(name="ETH first", target=D("0.70"), sale_cost_rate=D("0.0100"),
                                    sale_order=["ETH", "0700.HK"]),
        MarginPolicy.objects.create(name="Securities first", target=D("0.50"), sale_cost_rate=D("0.0200"),
                                    sale_order=["0005.HK", "0700.HK", "BTC"]),
    ]  # fmt: skip
    for facility in book:
        if rng.random() < 0.5:
            Facility.objects.filter(pk=facility.pk).update(policy=rng.choice(policies))
    shocks = {"crypto": f"-0.{rng.randint(50, 95)}", "ETH": f"-0.{rng.randint(30, 85)}",
              "security": f"-0.{rng.randint(10, 45)}", "USD/HKD": "0.003"}  # fmt: skip
    stressed = scenario(shocks, sale_cost="0.015" if seed % 2 else None)
    sql_run = stress_run(scenario=stressed, actor=SYSTEM)
    monkeypatch.setattr("oversight.stress.planned_in_sql", lambda: False)
    pure_run = stress_run(scenario=stressed, actor=SYSTEM)
    planned = plans(pure_run)
    assert len(planned) >= 10  # enough facilities a sale would reach to compare
    assert any(shortfall > 0 for *_, shortfall in planned.values())
    assert plans(sql_run) == planned
    assert sql_run.sale_volume == pure_run.sale_volume
    assert (sql_run.sale_proceeds, sql_run.shortfall, sql_run.lending_after_sales) == (
        pure_run.sale_proceeds, pure_run.shortfall, pure_run.lending_after_sales)  # fmt: skip
    # SQL plans every one of them, cuts and all: where a cut bends the ratio past the first window of candidates,
    # the second pass finds the last sale from the bound with the cuts in place (docs/stress-tests.md).
    assert sql_run.phases["plans_in_python"] == 0
    if seed != 21:  # a cut binds: some last sales were found only by the second pass, and equal the planner's
        assert sql_run.phases["plans_in_second_pass"] > 0


def live_counts():
    return {model.__name__: model.objects.count() for model in
            (MarginState, RatioSnapshot, MarginCall, ForcedSale, SaleOrder, Transaction, Event, OutboxMessage)}  # fmt: skip


def test_a_run_writes_nothing_to_the_live_tables(market):
    random_book(market, facilities=20, seed=7)
    monitoring_cycle_run(trigger="test")
    before = live_counts()
    states = list(
        MarginState.objects.values_list("facility_id", "margin_ratio", "status", "valued_at", "fixed_basis")
    )
    run = stress_run(scenario=scenario({"crypto": "-0.60", "security": "-0.30"}, key="crash"), actor=SYSTEM)
    assert run.by_status_after.get("forced_sale", 0) > 0  # the run found sales to plan …
    assert live_counts() == before  # … and made none
    assert (
        list(
            MarginState.objects.values_list(
                "facility_id", "margin_ratio", "status", "valued_at", "fixed_basis"
            )
        )
        == states
    )


def test_each_run_is_compared_with_the_previous_run_of_its_scenario(market):
    facility_with_pool(holdings={"BTC": "1"})
    crash = scenario({"BTC": "-0.4"})
    first = stress_run(scenario=crash, actor=SYSTEM)
    other = stress_run(scenario=scenario({"ETH": "-0.4"}, key="eth"), actor=SYSTEM)
    second = stress_run(scenario=crash, actor=SYSTEM)
    assert (first.previous, other.previous, second.previous) == (None, None, first)
    assert AuditEvent.objects.filter(action="stress_run.finished").count() == 3


def test_risk_officers_add_scenarios_audited_and_nothing_is_written_for_bad_input(market):
    officer = StaffFactory(role="Risk officer")
    made = stress_scenario_create(name="Tencent halves", shocks={"0700.HK": "-0.5", "USD/HKD": "-0.01"},
                                  sale_cost="0.03", actor=officer)  # fmt: skip
    assert (made.key, made.shocks, made.sale_cost) == (
        "tencent-halves",
        {"0700.HK": "-0.5", "USD/HKD": "-0.01"},
        D("0.03"),
    )
    event = AuditEvent.objects.get(action="stress_scenario.created")
    assert event.actor_label == officer.username
    count = StressScenario.objects.count()
    with pytest.raises(InvalidInput, match="DOGE: not an asset"):
        stress_scenario_create(name="x", shocks={"DOGE": "-0.5"}, actor=officer)
    with pytest.raises(InvalidInput, match="sale cost"):
        stress_scenario_create(name="x", shocks={"BTC": "-0.5"}, sale_cost="1.5", actor=officer)
    with pytest.raises(PermissionRefused):
        stress_scenario_create(name="x", shocks={"BTC": "-0.5"}, actor=StaffFactory(role="Operations"))
    with pytest.raises(PermissionRefused):
        stress_run(scenario=made, actor=StaffFactory(role="Compliance"))
    assert StressScenario.objects.count() == count
    assert stress_run(scenario=made, actor=officer).status == StressRunStatus.FINISHED


def test_the_library_is_there_with_its_ten_scenarios(db):
    library = StressScenario.objects.filter(in_library=True)
    assert library.count() == 10
    assert library.get(key="2020-03-12").shocks == {"BTC": "-0.396", "ETH": "-0.431"}
    assert library.get(key="hk-equities-22").shocks == {"security": "-0.22"}
