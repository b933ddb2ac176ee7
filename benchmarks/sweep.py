"""``make bench``: the margin sweep on a large book, timed against the floor no sweep can beat; the method
and the latest figures are in docs/benchmarks.md."""

from __future__ import annotations

import os
import resource
import sys
import time

import django


def say(message: str) -> None:
    print(message, flush=True)


def main() -> int:
    clients = int(os.environ.get("BENCH_CLIENTS", "100000"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")
    django.setup()

    from decimal import Decimal

    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import override_settings

    from accounts.audit import SYSTEM
    from benchmarks.seed import derive_balances, seed_book, seed_debt, seed_market
    from collateral.models import Asset
    from collateral.services import price_record
    from financing.models import Facility, ForcedSale, MarginCall, MarginState, RatioSnapshot
    from financing.monitoring.cycle import monitoring_cycle_run
    from financing.monitoring.sweep import SWEEP_WORK_MEM, asset_units, facility_figures, sweep_run
    from financing.selectors import facility_valuation
    from ledger.models import Transaction
    from notifications.models import Event, OutboxMessage

    say(
        f"bench: margin sweep on {clients:,} clients (PostgreSQL {connection.cursor().connection.info.server_version})"
    )
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    say(f"migrated in {time.perf_counter() - started:.1f} s; seeding…")
    seed_market(say)
    positions = seed_book(clients, say)
    derive_balances(say)
    first = time.perf_counter()
    sweep_run(trigger="bench-seed")
    say(f"  first valuation of the book: {time.perf_counter() - first:.1f} s")
    seed_debt(say)
    derive_balances(say)
    baseline = time.perf_counter()
    result = monitoring_cycle_run(trigger="bench-baseline")
    say(
        f"baseline sweep (every facility, ladder for the book's troubled clients): {time.perf_counter() - baseline:.2f} s, "
        f"{result.ladder_actions} ladder actions"
    )
    say(f"positions={positions:,} facilities={Facility.objects.count():,}")

    # The seed leaves what a bulk load leaves: nothing vacuumed, and a dead version of every margin state (the
    # baseline valued every one, and its ladder acted on every one: a one-off the steady state never sees).
    # Production's autovacuum clears that within a minute; here the daemon is off (``make bench``: it would wake
    # at an unknown moment of the timed runs). Vacuumed once, before both the floor and the sweep.
    vacuum = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    say(f"vacuumed and analysed in {time.perf_counter() - vacuum:.1f} s")

    # The sweep runs on identical copies of the book, one after another, as the floor runs three times: the
    # machine's speed varies by a quarter from one second to the next (eight floors in a row: 1.02 to 1.64 s),
    # so the best of three is set against the best of three. Each copy is a template copy of the vacuumed book,
    # new to the server's buffers like the others; the rest of the bench goes on with the last one.
    trials = max(1, int(os.environ.get("BENCH_SWEEP_TRIALS", "3")))
    book = connection.settings_dict["NAME"]
    copies = [f"{book}_trial_{i}" for i in range(1, trials + 1)]
    copying = time.perf_counter()
    for i, copy in enumerate(copies, 1):
        book_copy(connection, book, copy)
        say(f"  copy {i} of {trials} of the book made ({time.perf_counter() - copying:.1f} s)")
    os.sync()  # the copies' files written out now, not by the kernel in the middle of a timed run
    say(f"  copies on disk ({time.perf_counter() - copying:.1f} s)")

    # The floor: one statement, every pool's margin value, nothing written.
    units = asset_units()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS floor_units")
        cursor.execute(
            "CREATE TEMP TABLE floor_units (symbol varchar(20) PRIMARY KEY, unit_value numeric, haircut numeric, "
            "concentration_limit numeric, eligible boolean)"
        )
        cursor.executemany(
            "INSERT INTO floor_units VALUES (%s, %s, %s, %s, %s)",
            [(u.symbol, u.unit_value, u.haircut, u.concentration_limit, u.eligible) for u in units],
        )
        cursor.execute("ANALYZE floor_units")
        cursor.execute(f"SET work_mem = '{SWEEP_WORK_MEM}'")  # the same memory the sweep gets
        floor_times = []
        for _ in range(3):
            floor_started = time.perf_counter()
            cursor.execute(FLOOR_SQL)
            pools, total = cursor.fetchone()
            floor_times.append(time.perf_counter() - floor_started)
        # The same statement writing what a stress run must keep: a row per open facility, with the margin state's
        # figures before (rolled back; the stress test runs on another copy of the book).
        write_floor_times = []
        for _ in range(3):
            with transaction.atomic():
                write_floor_started = time.perf_counter()
                cursor.execute(WRITE_FLOOR_SQL)
                written_rows = cursor.rowcount
                write_floor_times.append(time.perf_counter() - write_floor_started)
                transaction.set_rollback(True)
    floor_s, write_floor_s = min(floor_times), min(write_floor_times)
    say(
        f"floor: one SQL statement values {pools:,} pools (margin value HK${total:,.2f}) in {floor_s:.3f} s "
        f"(best of 3: {', '.join(f'{t:.3f}' for t in floor_times)})"
    )
    say(
        f"floor with the rows a stress run keeps: the same statement writing {written_rows:,} rows of stress results "
        f"in {write_floor_s:.3f} s (best of 3: {', '.join(f'{t:.3f}' for t in write_floor_times)})"
    )

    # The move and the sweep, on each copy. Before the move, the sweep of a quiet market (nothing moved, nothing
    # written) that production runs every few seconds: the timed sweep follows one, as it does there. Every
    # trial must write the same rows.
    written_models = (RatioSnapshot, Event, OutboxMessage, MarginCall, ForcedSale)
    sweep_times, trial_writes = [], []
    try:
        for trial, database in enumerate(copies, 1):
            use_database(connection, database)
            monitoring_cycle_run(symbols=["BTC"], trigger="bench-quiet")
            counts_before = {m.__name__: m.objects.count() for m in written_models}
            btc = Asset.objects.get(pk="BTC")
            with transaction.atomic():
                price_record(asset=btc, price=Decimal("88200"), source="bench: BTC -10%", actor=SYSTEM)
            sweep_started = time.perf_counter()
            result = monitoring_cycle_run(symbols=["BTC"], trigger="bench")
            sweep_times.append(time.perf_counter() - sweep_started)
            written = {m.__name__: m.objects.count() - counts_before[m.__name__] for m in written_models}
            run = result.run
            trial_writes.append(
                (result.facilities_valued, result.states_changed, result.ladder_actions, written)
            )
            say(
                f"sweep {trial} of {trials} after BTC -10%: {sweep_times[-1]:.3f} s; {result.facilities_valued:,} "
                f"facilities revalued, {result.states_changed:,} states changed, {result.snapshots_written:,} "
                f"snapshots, {result.ladder_actions:,} ladder actions "
                f"({', '.join(f'{k} +{v:,}' for k, v in written.items())})"
            )
            say(
                f"  of which the scope {run.scope_ms / 1000:.3f} s, valuation with margin states and snapshots "
                f"{(run.duration_ms - run.scope_ms - run.ladder_ms) / 1000:.3f} s, the margin-call ladder "
                f"{run.ladder_ms / 1000:.3f} s"
            )
            if trial < trials:
                use_database(connection, book)
                book_drop(connection, database)
    except BaseException:
        use_database(connection, book)
        for copy in copies:
            book_drop(connection, copy, missing_ok=True)
        raise
    if any(writes != trial_writes[0] for writes in trial_writes):
        say(f"the trials wrote different rows: {trial_writes}")
        return 1
    sweep_s = min(sweep_times)
    say(f"sweep: {sweep_s:.3f} s (best of {trials}: {', '.join(f'{t:.3f}' for t in sweep_times)})")
    say(
        f"  {run.valued_from_fixed_part:,} of the {result.facilities_valued:,} pools valued from their stored fixed part "
        f"and the new BTC price, the others from their positions"
    )
    again = time.perf_counter()
    second = monitoring_cycle_run(symbols=["BTC"], trigger="bench-again")
    say(
        f"the same sweep again: {time.perf_counter() - again:.3f} s, {second.states_changed} states changed, {second.ladder_actions} ladder actions"
    )

    # Correctness on a sample: the SQL sweep against the pure calculations. The write rule leaves a drift
    # within the step unwritten (docs/monitoring.md), so this one sweep writes every change to compare them all.
    with override_settings(SWEEP_RATIO_STEP=Decimal(0), SWEEP_WRITE_INTERVAL_SECONDS=0):
        monitoring_cycle_run(symbols=["BTC"], trigger="bench-check")
    sample = list(Facility.objects.order_by("?").values_list("client_id", flat=True)[:1000])
    expected = {row[0]: row[1:] for row in facility_figures(sample)}
    actual = {
        s.facility_id: (s.market_value, s.margin_value, s.debt, s.margin_ratio, s.status)
        for s in MarginState.objects.filter(facility_id__in=expected)
    }
    mismatches = sum(1 for pk, row in expected.items() if actual.get(pk) != row)
    say(
        f"check: {len(expected) - mismatches:,} of {len(expected):,} sampled facilities agree with the calculations to the cent"
    )

    # The naive way: one client at a time through the ORM.
    facilities = list(Facility.objects.filter(client_id__in=sample).select_related("client"))
    naive_started = time.perf_counter()
    with transaction.atomic():
        for facility in facilities:
            valuation = facility_valuation(facility)
            MarginState.objects.filter(facility=facility).update(
                market_value=valuation.market_value, margin_value=valuation.margin_value,
                debt=valuation.debt.total, margin_ratio=valuation.margin_ratio, status=valuation.status,
            )  # fmt: skip
        transaction.set_rollback(True)
    naive_sample_s = time.perf_counter() - naive_started
    naive_s = naive_sample_s * clients / len(facilities)
    say(
        f"naive: {len(facilities):,} facilities one by one in {naive_sample_s:.2f} s → {naive_s:.1f} s for {clients:,}"
    )

    # A stress test of the whole book: one scenario, read-only (nothing of the live book written), with the
    # forced-sale plan of every facility a call or a sale would reach.
    stress_s, stress_ok = stress_bench(say, (*written_models, MarginState, Transaction))

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(
        f"sweep_s={sweep_s:.3f} floor_s={floor_s:.3f} naive_s={naive_s:.1f} ratio_to_floor={sweep_s / floor_s:.2f} "
        f"stress_s={stress_s:.3f} stress_to_floor={stress_s / floor_s:.2f} write_floor_s={write_floor_s:.3f} "
        f"stress_to_write_floor={stress_s / write_floor_s:.2f} "
        f"clients={clients} positions={positions} peak_rss_mb={peak_rss_mb:.0f}"
    )
    return 0 if mismatches == 0 and stress_ok else 1


def stress_bench(say, live_models) -> tuple[float, bool]:
    """One library scenario (BENCH_STRESS_SCENARIO, BTC and ETH −30% by default) on the whole book, run
    BENCH_STRESS_TRIALS times (3) as the floor is: the best time, and whether every run found the same figures
    and left every live table as it was. The runs after the first have a previous run to be compared with, as
    a monthly run has."""
    from oversight.models import StressScenario
    from oversight.stress import library_ensure, stress_run

    library_ensure()
    scenario = StressScenario.objects.get(key=os.environ.get("BENCH_STRESS_SCENARIO", "crypto-30"))
    trials = max(1, int(os.environ.get("BENCH_STRESS_TRIALS", "3")))
    before = {m.__name__: m.objects.count() for m in live_models}
    times, figures = [], set()
    for trial in range(1, trials + 1):
        started = time.perf_counter()
        run = stress_run(scenario=scenario, trigger="on_demand")
        times.append(time.perf_counter() - started)
        planned = sum(run.by_status_after.get(s, 0) for s in ("margin_call", "forced_sale"))
        figures.add((run.facilities, tuple(sorted(run.by_status_after.items())), run.shortfall))
        say(
            f"stress test {trial} of {trials} ({scenario.name}): {times[-1]:.3f} s for {run.facilities:,} facilities; "
            f"after the shock {', '.join(f'{k} {v:,}' for k, v in sorted(run.by_status_after.items()))}; "
            f"{planned:,} forced sales planned, shortfall HK${run.shortfall:,.2f}"
        )
        say(f"  of which {', '.join(f'{k} {v:,}' for k, v in run.phases.items())}")
    after = {m.__name__: m.objects.count() for m in live_models}
    untouched, same = before == after, len(figures) == 1
    say(
        f"stress test: best of {trials} {min(times):.3f} s; "
        f"{'every run found the same figures' if same else f'the runs DIFFER: {figures}'}; "
        f"live tables {'untouched' if untouched else f'CHANGED: {before} → {after}'}"
    )
    return min(times), untouched and same


def _maintenance(connection):
    """A connection to the server's maintenance database (a database cannot be copied or dropped from a
    connection to it)."""
    import psycopg

    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or None, user=settings["USER"],
        password=settings["PASSWORD"] or None, dbname="postgres", autocommit=True,
    )  # fmt: skip


def book_copy(connection, book: str, copy: str) -> None:
    """``copy``: a copy of the database ``book`` (which nobody may be connected to meanwhile: the Django
    connection is closed first). A file copy (PostgreSQL 15 and later), not hundreds of megabytes of WAL."""
    from psycopg import sql

    strategy = sql.SQL(" STRATEGY FILE_COPY") if connection.pg_version >= 150000 else sql.SQL("")
    connection.close()
    book_drop(connection, copy, missing_ok=True)
    with _maintenance(connection) as maintenance:
        maintenance.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy), sql.Identifier(book))
            + strategy
        )


def book_drop(connection, copy: str, *, missing_ok: bool = False) -> None:
    from psycopg import sql

    exists = sql.SQL(" IF EXISTS") if missing_ok else sql.SQL("")
    with _maintenance(connection) as maintenance:
        maintenance.execute(sql.SQL("DROP DATABASE{} {} WITH (FORCE)").format(exists, sql.Identifier(copy)))


def use_database(connection, name: str) -> None:
    """Point the Django connection at the database ``name`` (it connects again on its next query)."""
    connection.close()
    connection.settings_dict["NAME"] = name


# Every pool's margin value, per client: haircuts and concentration cuts, nothing else.
POOLS_SQL = """
SELECT client_id,
       SUM(CASE WHEN eligible THEN
               FLOOR(LEAST(mv, COALESCE(concentration_limit * pool_mv, mv)) * (1 - haircut) * 100) / 100.00
           ELSE 0 END) AS margin_value
  FROM (
    SELECT pv.*, SUM(pv.mv) OVER (PARTITION BY pv.client_id) AS pool_mv
      FROM (
        SELECT p.client_id, u.haircut, u.concentration_limit, u.eligible, ROUND(b.amount * u.unit_value, 2) AS mv
          FROM collateral_collateralpool p
          JOIN ledger_balance b ON b.account_id = p.account_id AND b.amount <> 0
          JOIN floor_units u ON u.symbol = b.instrument_id AND u.unit_value IS NOT NULL
      ) AS pv
  ) AS pos
 GROUP BY client_id
"""

FLOOR_SQL = f"SELECT COUNT(*), SUM(margin_value) FROM ({POOLS_SQL}) AS pools"

# The floor and a stress run's rows: one per open facility, its margin state's figures before, the pool's margin
# value after (as market value and margin value), into the results table with its keys and indexes.
WRITE_FLOOR_SQL = f"""
INSERT INTO oversight_stressresult (
    run_id, facility_id, market_value_before, margin_value_before, debt_before, ratio_before, status_before,
    market_value, margin_value, debt, ratio_after, status_after, repayment_to_cure, sale_plan, sale_proceeds,
    ratio_after_sale, shortfall)
SELECT 0, f.id, s.market_value, s.margin_value, s.debt, s.margin_ratio, s.status,
       pools.margin_value, pools.margin_value, s.debt, s.margin_ratio, s.status, 0, '[]', 0, NULL, 0
  FROM ({POOLS_SQL}) AS pools
  JOIN financing_facility f ON f.client_id = pools.client_id AND f.status <> 'closed'
  JOIN financing_marginstate s ON s.facility_id = f.id
"""

if __name__ == "__main__":
    sys.exit(main())
