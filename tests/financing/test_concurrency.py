"""Races on real PostgreSQL: threads with their own connections, each committing for real."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, transaction

from accounts.audit import SYSTEM
from collateral.calculations import ratio_above
from core.exceptions import DomainError
from financing.models import Drawdown, SweepRun
from financing.selectors import facility_debt, facility_pool, facility_valuation
from financing.services import collateral_withdraw, drawdown_create
from financing.sweep import SWEEP_LOCK_KEY, sweep_run
from ledger.selectors import balances_from_legs, balances_projected
from tests.collateral.factories import standard_market
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(*calls):
    """Start every call at the same moment, each in its own thread and database connection."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        try:
            barrier.wait()
            call()
            return "ok"
        except DomainError as refusal:
            return refusal.code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_twenty_concurrent_drawdowns_never_pass_the_facility_limit():
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "10"}, limit="700000.00")  # LV 3,120,000: limit binds
    outcomes = run_together(
        *[lambda: drawdown_create(facility=facility, amount="100000.00", actor=SYSTEM)] * 20
    )
    assert outcomes.count("ok") == 7
    assert outcomes.count("facility_limit_exceeded") == 13
    assert facility_debt(facility).principal == Decimal("700000.00")
    assert Drawdown.objects.count() == 7


def test_twenty_concurrent_drawdowns_never_pass_max_advance():
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1", "HKD": "100000.00"})  # LV 412,000; 85% = 350,200
    outcomes = run_together(
        *[lambda: drawdown_create(facility=facility, amount="50000.00", actor=SYSTEM)] * 20
    )
    assert outcomes.count("ok") == 7  # 7 × 50,000 = 350,000 ≤ 350,200 < 400,000
    assert outcomes.count("max_advance_exceeded") == 13
    valuation = facility_valuation(facility)
    assert not ratio_above(valuation.debt.total, valuation.margin_value, Decimal("0.85"))
    assert balances_projected() == balances_from_legs()


def test_a_withdrawal_racing_a_drawdown_cannot_together_break_the_ratio():
    assets = standard_market()
    for _ in range(8):
        # Each alone is fine: draw 300,000 against LV 412,000 (73%), or take the HKD 100,000 out with no
        # debt. Together they would leave 300,000 against 312,000 (96%).
        facility = facility_with_pool(holdings={"BTC": "1", "HKD": "100000.00"})
        pool = facility_pool(facility)
        outcomes = run_together(
            lambda facility=facility: drawdown_create(facility=facility, amount="300000.00", actor=SYSTEM),
            lambda pool=pool: collateral_withdraw(
                pool=pool, asset=assets["HKD"], quantity="100000.00", actor=SYSTEM
            ),
        )
        assert sorted(outcomes) == ["max_advance_exceeded", "ok"]
        valuation = facility_valuation(facility)
        assert not ratio_above(valuation.debt.total, valuation.margin_value, Decimal("0.85"))


def test_sweeps_run_one_at_a_time():
    """A sweep waits for the one before it to commit: each stores what it read, never over a later one."""
    standard_market()
    facility_with_pool(holdings={"BTC": "1"})
    started, finished = threading.Event(), threading.Event()

    def sweep():
        try:
            started.set()
            sweep_run(trigger="test", ladder=False)
            finished.set()
        finally:
            connection.close()

    thread = threading.Thread(target=sweep)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SWEEP_LOCK_KEY])  # as a sweep under way holds it
        thread.start()
        started.wait()
        assert not finished.wait(1)  # still waiting for this transaction
    assert finished.wait(30)
    thread.join()
    assert SweepRun.objects.get().finished_at is not None
