"""The firm's totals each sweep writes (``FirmTotals``): the facilities by margin status, the outstanding
principal and the largest loan, counted afresh by a full sweep and carried forward by the others from what
they changed — the same figures either way, and the same with both sweeps."""

import types
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count

from accounts.audit import SYSTEM
from financing.enums import FacilityStatus, MarginStatus
from financing.lending.services import drawdown_create, facility_status_change, repayment_create
from financing.models import FirmTotals, MarginState
from financing.monitoring.cycle import monitoring_cycle_run
from financing.selectors import default_policy, total_margin_loans
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["set-based on PostgreSQL", "rows in Python"])
def sweep(request, monkeypatch):
    """Each test with the sweep that runs on PostgreSQL (``sweep.sql``) and the one that runs elsewhere."""
    if request.param == "rows in Python":
        monkeypatch.setattr(
            "financing.monitoring.sweep.connection",
            types.SimpleNamespace(vendor="other", cursor=connection.cursor),
        )
    return request.param


def counted_afresh() -> dict[str, int]:
    counted = dict(
        MarginState.objects.filter(open=True).values_list("status").annotate(n=Count("pk")).order_by()
    )
    return {status.value: counted.get(status.value, 0) for status in MarginStatus}


def listed_afresh() -> int:
    """Open facilities at warning or worse, or within 0.10 of their policy's warning level, one by one."""
    default = default_policy()
    return sum(
        1
        for state in MarginState.objects.filter(open=True).select_related("policy")
        if state.status in ("warning", "margin_call", "forced_sale")
        or (
            state.status == "ok" and state.margin_ratio >= (state.policy or default).warning - Decimal("0.10")
        )
    )


def assert_totals_hold(run) -> FirmTotals:
    totals = FirmTotals.objects.get(run=run)
    assert totals.by_status == counted_afresh()
    assert totals.listed == listed_afresh()
    assert totals.facilities_open == MarginState.objects.filter(open=True).count()
    assert totals.lending == total_margin_loans()
    return totals


def test_each_sweep_writes_the_firm_totals_a_full_sweep_counts_and_the_others_carry_forward(market, sweep):
    called = facility_with_pool(holdings={"BTC": "1"})  # one BTC: HK$312,000 of margin value at US$100,000
    warned = facility_with_pool(holdings={"BTC": "1"})
    ether = facility_with_pool(holdings={"ETH": "100"})
    idle = facility_with_pool(holdings={"BTC": "2"})
    drawdown_create(facility=called, amount="250000.00", actor=SYSTEM)
    drawdown_create(facility=warned, amount="230000.00", actor=SYSTEM)
    drawdown_create(facility=ether, amount="400000.00", actor=SYSTEM)
    full = assert_totals_hold(monitoring_cycle_run(trigger="test").run)
    assert full.recounted
    assert full.by_status == {"no_debt": 1, "ok": 3, "warning": 0, "margin_call": 0, "forced_sale": 0}
    assert full.lending == Decimal("880000.00")
    assert (full.largest_facility_id, full.largest_loan) == (ether.pk, Decimal("400000.00"))

    price("BTC", "80000")  # 249,600 a BTC: 250,000 is a call, 230,000 a warning
    moved = assert_totals_hold(monitoring_cycle_run(symbols=["BTC"], trigger="test").run)
    assert not moved.recounted
    assert moved.by_status == {"no_debt": 1, "ok": 1, "warning": 1, "margin_call": 1, "forced_sale": 0}

    drawdown_create(facility=idle, amount="420000.00", actor=SYSTEM)  # the largest loan now
    repayment_create(facility=warned, amount="30000.00", actor=SYSTEM)
    price("ETH", "3900")
    after = assert_totals_hold(monitoring_cycle_run(symbols=["ETH"], trigger="test").run)
    assert not after.recounted
    assert after.listed == 3  # the call, the warning, and idle: 420,000 on 499,200 (84.1%) is near its 90%
    assert after.lending == Decimal("880000.00") + Decimal("420000.00") - Decimal("30000.00")
    assert (after.largest_facility_id, after.largest_loan) == (idle.pk, Decimal("420000.00"))

    spare = facility_with_pool(holdings={"BTC": "1"})
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    facility_status_change(facility=spare, status=FacilityStatus.CLOSED, actor=SYSTEM)
    price("BTC", "79000")
    closed = assert_totals_hold(monitoring_cycle_run(symbols=["BTC"], trigger="test").run)
    assert closed.facilities_open == 4
    assert closed.tally_by_status["no_debt"] == closed.by_status["no_debt"] + 1  # the closed one, set apart

    again = assert_totals_hold(monitoring_cycle_run(trigger="test").run)
    assert again.recounted
    assert (again.by_status, again.lending) == (closed.by_status, closed.lending)
