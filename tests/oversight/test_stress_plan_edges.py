"""The SQL sale plans against the Python planner's on pools the random books do not make: a security with no
price, a policy's sale order that repeats an asset (left to the Python planner), or names a security with no
price and a cash currency."""

from decimal import Decimal as D

import pytest

from accounts.audit import SYSTEM
from collateral import services
from financing.lending.services import drawdown_create
from financing.models import Facility, MarginPolicy
from financing.monitoring.sweep import sweep_run
from oversight.models import StressResult
from oversight.stress import stress_run
from tests.financing.factories import facility_with_pool
from tests.oversight.factories import scenario

pytestmark = pytest.mark.django_db


def plans(run):
    return {
        r.facility_id: (r.status_after, r.sale_plan, r.sale_proceeds, r.ratio_after_sale, r.shortfall)
        for r in StressResult.objects.filter(run=run)
    }


@pytest.mark.parametrize(
    ("order", "in_python"), [([], 0), (["ETH", "BTC", "ETH"], 4), (["9988.HK", "0700.HK", "USD"], 0)]
)
def test_sale_plans_with_an_unpriced_security_and_odd_sale_orders_equal_the_planners(
    market, monkeypatch, order, in_python
):
    services.asset_create(
        symbol="9988.HK",
        name="Alibaba",
        kind="security",
        currency="HKD",
        decimals=0,
        haircut="0.4",
        lot_size="100",
        concentration_limit="0.4",
        sale_rank=12,
        actor=SYSTEM,
    )  # fmt: skip  (no price: held, never valued nor sold)
    policy = MarginPolicy.objects.create(
        name="odd", target=D("0.70"), sale_cost_rate=D("0.0100"), sale_order=order
    )
    pools = [
        ({"BTC": "1", "9988.HK": "500", "0700.HK": "300"}, "300000"),
        ({"ETH": "20", "9988.HK": "1000", "HKD": "1000"}, "150000"),
        ({"BTC": "0.5", "ETH": "10", "USD": "10000"}, "250000"),
        ({"0005.HK": "5000", "BTC": "0.3"}, "250000"),
    ]
    for holdings, amount in pools:
        facility = facility_with_pool(holdings=holdings, limit="50000000", credit_limit="50000000")
        Facility.objects.filter(pk=facility.pk).update(policy=policy)
        drawdown_create(facility=facility, amount=amount, actor=SYSTEM)
    sweep_run(trigger="test")
    crash = scenario({"crypto": "-0.6", "security": "-0.3"}, sale_cost="0.015")
    sql_run = stress_run(scenario=crash, actor=SYSTEM)
    monkeypatch.setattr("oversight.stress.planned_in_sql", lambda: False)
    pure_run = stress_run(scenario=crash, actor=SYSTEM)
    assert sql_run.by_status_after == {"forced_sale": 4}
    assert sql_run.phases["plans_in_python"] == in_python
    assert plans(sql_run) == plans(pure_run)
    assert sql_run.sale_volume == pure_run.sale_volume
    assert (sql_run.sale_proceeds, sql_run.shortfall, sql_run.lending_after_sales) == (
        pure_run.sale_proceeds, pure_run.shortfall, pure_run.lending_after_sales)  # fmt: skip
