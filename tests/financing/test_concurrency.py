"""Races on real PostgreSQL: threads with their own connections, each committing for real."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from collateral.calculations import ratio_above
from core.exceptions import DomainError
from financing.enums import FacilityStatus, ForcedSaleTrigger, MarginCallStatus, MarginStatus
from financing.lending.services import collateral_withdraw, drawdown_create, facility_status_change
from financing.locks import SWEEP_LOCK_KEY
from financing.models import Drawdown, ForcedSale, MarginCall, MarginState, SweepRun
from financing.monitoring.ladder import ladder_apply, ladder_run
from financing.monitoring.sweep import sweep_run
from financing.selectors import facility_debt, facility_pool, facility_valuation
from ledger.enums import TransactionKind
from ledger.models import Transaction
from ledger.selectors import balances_from_legs, balances_projected
from tests.collateral.factories import price, standard_market
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


def blocked_on_a_lock(timeout: float = 30) -> bool:
    """Whether another connection is waiting for a lock (a row's, or an advisory one) within ``timeout``
    seconds: a thread has got as far as the lock it is to wait on, however slowly it got there."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT pg_stat_clear_snapshot()"
            )  # activity is read afresh, not as of the transaction
            cursor.execute(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND pid <> pg_backend_pid())"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.05)
    return False


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


def test_drawdowns_on_many_facilities_at_once_never_pass_the_firm_wide_cap(settings):
    """Each drawdown checks its own facility side by side with the others, and the firm-wide cap under the
    firm-wide lock it takes last: twelve facilities drawing at once never lend more than 5 × capital."""
    standard_market()
    settings.BROKER_CAPITAL_HKD = Decimal("200000.00")  # the firm-wide cap: 5 × 200,000 = 1,000,000
    settings.CLIENT_LOAN_SHARE_OF_CAPITAL = Decimal("1")  # a client's cap (200,000) does not bind
    facilities = [facility_with_pool(holdings={"BTC": "1"}) for _ in range(12)]
    outcomes = run_together(
        *[
            (lambda facility=facility: drawdown_create(facility=facility, amount="50000.00", actor=SYSTEM))
            for facility in facilities
            for _ in range(2)
        ]
    )
    assert outcomes.count("ok") == 20  # 20 × 50,000 = the cap
    assert outcomes.count("firm_limit_exceeded") == 4
    assert sum(facility_debt(f).principal for f in facilities) == Decimal("1000000.00")
    assert balances_projected() == balances_from_legs()
    # The four refused had written their ledger transaction, drawdown and audit event before the firm-wide
    # check (the hot rows come last): each went with its refusal.
    assert Drawdown.objects.count() == 20
    assert Transaction.objects.filter(kind=TransactionKind.DRAWDOWN).count() == 20
    assert AuditEvent.objects.filter(action="drawdown.created").count() == 20


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
            sweep_run(trigger="test")
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


def test_a_facility_closed_while_a_sweep_first_values_it_is_marked_closed():
    """A sweep under way may be valuing a facility for the first time, from a reading that has it open:
    closing it waits for the sweep, then marks the state the sweep wrote."""
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"})
    started, closed = threading.Event(), threading.Event()

    def close():
        try:
            started.set()
            facility_status_change(facility=facility, status=FacilityStatus.CLOSED, actor=SYSTEM)
            closed.set()
        finally:
            connection.close()

    thread = threading.Thread(target=close)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [SWEEP_LOCK_KEY]
            )  # as a sweep under way holds it
        thread.start()
        started.wait()
        assert not closed.wait(1)  # the facility waits for the sweep
        MarginState.objects.create(  # what that sweep writes of the facility, from a reading that has it open
            facility=facility, market_value=0, margin_value=0, debt=0, valued_at=timezone.now(),
            status_since=timezone.now(),
        )  # fmt: skip
    assert closed.wait(30)
    thread.join()
    assert MarginState.objects.get(facility=facility).open is False


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_status_stored_while_the_ladder_acts_stays_due():
    """The ladder acts on the margin call it read, while a sweep stores a forced sale for the same facility
    (nothing was posted to the client since: the ladder does not value it again): the state is marked acted
    on at the margin call, so the forced sale is still due, and the next run requests the sale."""
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    sweep_run(trigger="test")
    price("BTC", "80000")  # LV 249,600: 106.25%, a margin call
    sweep_run(symbols=["BTC"], trigger="test")
    assert MarginState.objects.get(facility=facility).status == MarginStatus.MARGIN_CALL
    acting, acted = threading.Event(), threading.Event()

    def ladder():
        try:
            acting.set()
            ladder_apply(facility_ids=[facility.pk])
            acted.set()
        finally:
            connection.close()

    thread = threading.Thread(target=ladder)
    with transaction.atomic():  # a sweep after a further fall storing a forced sale, not yet committed
        price("BTC", "60000")  # LV 187,200: 141.7%
        MarginState.objects.filter(facility=facility).update(status=MarginStatus.FORCED_SALE)
        thread.start()
        acting.wait()
        assert blocked_on_a_lock()  # the ladder waits to mark the state
        assert not acted.is_set()
    assert acted.wait(30)
    thread.join()
    state = MarginState.objects.get(facility=facility)
    assert (state.status, state.notified_status) == (MarginStatus.FORCED_SALE, MarginStatus.MARGIN_CALL)
    assert MarginCall.objects.get(facility=facility).status == MarginCallStatus.ISSUED
    assert not ForcedSale.objects.exists()
    ladder_run()
    assert ForcedSale.objects.get(facility=facility).trigger == ForcedSaleTrigger.THRESHOLD
    assert MarginState.objects.get(facility=facility).notified_status == MarginStatus.FORCED_SALE


@pytest.mark.usefixtures("both_ladders")
@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_ladder_batch_waits_for_a_sweep_under_way_and_acts_on_what_it_stored():
    """A sweep under way (holding the sweeps' lock) stores a forced sale for a facility at a margin call: the
    ladder's batch waits for it to commit — neither waits for a row the other holds, so neither is aborted as a
    deadlock — then acts on the forced sale at once, handing the call over to it."""
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    sweep_run(trigger="test")
    price("BTC", "80000")  # LV 249,600: 106.25%, a margin call
    sweep_run(symbols=["BTC"], trigger="test")
    ladder_run()
    assert MarginCall.objects.get(facility=facility).status == MarginCallStatus.ISSUED
    acting, acted = threading.Event(), threading.Event()

    def ladder():
        try:
            acting.set()
            ladder_apply(facility_ids=[facility.pk])
            acted.set()
        finally:
            connection.close()

    thread = threading.Thread(target=ladder)
    with transaction.atomic():  # a sweep after a further fall, storing a forced sale, not yet committed
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SWEEP_LOCK_KEY])
        price("BTC", "60000")  # LV 187,200: 141.7%
        MarginState.objects.filter(facility=facility).update(status=MarginStatus.FORCED_SALE)
        thread.start()
        acting.wait()
        assert blocked_on_a_lock()  # the batch waits for the sweep
        assert not acted.is_set()
    assert acted.wait(30)
    thread.join()
    state = MarginState.objects.get(facility=facility)
    assert (state.status, state.notified_status) == (MarginStatus.FORCED_SALE, MarginStatus.FORCED_SALE)
    assert ForcedSale.objects.get(facility=facility).trigger == ForcedSaleTrigger.THRESHOLD
    assert MarginCall.objects.get(facility=facility).status == MarginCallStatus.FORCED_SALE


@pytest.mark.usefixtures("both_ladders")
def test_a_sweep_waits_for_a_ladder_batch_under_way():
    standard_market()
    facility_with_pool(holdings={"BTC": "1"})
    started, finished = threading.Event(), threading.Event()

    def sweep():
        try:
            started.set()
            sweep_run(trigger="test")
            finished.set()
        finally:
            connection.close()

    thread = threading.Thread(target=sweep)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock_shared(%s)", [SWEEP_LOCK_KEY]
        )  # as a batch under way holds it
        thread.start()
        started.wait()
        assert blocked_on_a_lock()
        assert not finished.is_set()
    assert finished.wait(30)
    thread.join()


@pytest.mark.usefixtures("both_ladders")
@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_sweeps_and_ladder_runs_racing_lose_no_crossing(caplog):
    """Two processes' worth of work at once: one sweeping BTC down and up across every threshold, the other
    running the ladder over and over. Nothing fails (no deadlock aborted, nothing left for a retry), and at
    the end every facility's status has been acted on, with each crossing's event."""
    standard_market()
    facilities = [facility_with_pool(holdings={"BTC": "1"}) for _ in range(6)]
    for i, facility in enumerate(facilities):
        drawdown_create(facility=facility, amount=f"{250000 + i * 3000}.00", actor=SYSTEM)
    sweep_run(trigger="test")
    ladder_run()
    prices = ["94000", "84000", "80000", "90000", "99000", "86000", "70000"]
    done = threading.Event()

    def sweeps():
        for value in prices:
            price("BTC", value)
            sweep_run(symbols=["BTC"], trigger="test")
        done.set()

    def ladders():
        while not done.is_set():
            ladder_run()

    with caplog.at_level("ERROR", logger="financing.monitoring.ladder"):
        outcomes = run_together(sweeps, ladders)
    assert outcomes == ["ok", "ok"]
    assert [r.getMessage() for r in caplog.records] == []  # no batch failed (a deadlock is logged there)
    ladder_run()
    states = MarginState.objects.filter(facility__in=facilities)
    assert all(s.status == s.notified_status for s in states)
    assert {s.status for s in states} == {MarginStatus.FORCED_SALE, MarginStatus.MARGIN_CALL}
    assert set(ForcedSale.objects.values_list("facility_id", flat=True)) == {
        s.facility_id for s in states if s.status == MarginStatus.FORCED_SALE
    }
    called = set(MarginCall.objects.values_list("facility_id", flat=True))
    assert called == {f.pk for f in facilities}  # every facility crossed 100% on the way down
