"""``make bench-soak``: a day at production duty, compressed. The bench book (``benchmarks/seed.py``), then a run
of monitoring cycles as production runs them — a price refresh and a sweep every 10 seconds, BTC and ETH moving
by a few basis points each time and now and then by a percent — measuring what each writes: rows per table,
WAL bytes (``pg_current_wal_lsn``), database growth and sweep time, extrapolated to a day. The method and the
latest figures are in docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import random
import statistics
import sys
import time
import uuid

import django

SECONDS_PER_SWEEP = 10  # production's schedule: "Price refresh and margin sweep", every 10 seconds
SWEEPS_PER_DAY = 86400 // SECONDS_PER_SWEEP
VENUES = ("fake-a", "fake-b", "fake-c")  # the quotes an oracle refresh records: one per venue and asset


def say(message: str) -> None:
    print(message, flush=True)


class SimulatedClock:
    """The sweep's clock, 10 seconds on per sweep, whatever a sweep takes here: the write rule's interval
    (``SWEEP_WRITE_INTERVAL_SECONDS``) is in production seconds. Only the sweep's own moment moves (its
    snapshots' and states' times); nothing is posted during the soak, so the postings' real times do not
    matter."""

    def __init__(self, start: datetime.datetime):
        self.at = start

    def now(self) -> datetime.datetime:
        return self.at

    def tick(self) -> None:
        self.at += datetime.timedelta(seconds=SECONDS_PER_SWEEP)


def day_quantile(times: list[float], kinds: list[str], q: float, large_per_day: int) -> float:
    """The ``q`` quantile of a day's sweep times: each small sweep of the soak standing for its share of the
    day's small sweeps, each large one for its share of the day's ``large_per_day`` (the soak runs more large
    moves than a day has, to measure them)."""
    counts = {kind: kinds.count(kind) for kind in ("small", "large")}
    share = {"small": (SWEEPS_PER_DAY - large_per_day) / max(counts["small"], 1),
             "large": large_per_day / max(counts["large"], 1)}  # fmt: skip
    weighted = sorted((t, share[kind]) for t, kind in zip(times, kinds, strict=True))
    total = sum(weight for _, weight in weighted)
    running = 0.0
    for value, weight in weighted:
        running += weight
        if running >= q * total:
            return value
    return weighted[-1][0]


def main() -> int:
    clients = int(os.environ.get("BENCH_CLIENTS", "100000"))
    sweeps = int(os.environ.get("SOAK_SWEEPS", "180"))
    # A move of about a percent every this many sweeps; a day is taken to have this many of them (one an hour),
    # the rest of its 8,640 sweeps small ones: each kind's mean, weighted so, makes the day's figures.
    large_every = int(os.environ.get("SOAK_LARGE_EVERY", "60"))
    large_per_day = int(os.environ.get("SOAK_LARGE_PER_DAY", "24"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")
    django.setup()

    from decimal import Decimal

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    import financing.monitoring.sweep as sweep_module
    from accounts.audit import SYSTEM
    from benchmarks.seed import derive_balances, seed_book, seed_debt, seed_market
    from collateral.models import Asset, CurrentPrice, PriceQuote
    from collateral.services import price_record
    from financing.monitoring.cycle import monitoring_cycle_run
    from financing.monitoring.sweep import sweep_run

    def query(sql: str, params=None):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def wal_lsn() -> str:
        return query("SELECT pg_current_wal_lsn()")[0][0]

    def wal_bytes_since(lsn: str) -> int:
        return int(query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [lsn])[0][0])

    def database_bytes() -> int:
        return int(query("SELECT pg_database_size(current_database())")[0][0])

    def table_writes() -> dict[str, tuple[int, int, int]]:
        """Rows inserted, updated and deleted so far, per table (partitions counted under their table). This
        connection's counts are flushed at the end of the statement that asks for it, and read by the next."""
        query("SELECT pg_stat_force_next_flush()")
        rows = query(
            "SELECT COALESCE(p.relname, s.relname), SUM(s.n_tup_ins), SUM(s.n_tup_upd), SUM(s.n_tup_del) "
            "FROM pg_stat_user_tables s LEFT JOIN pg_inherits i ON i.inhrelid = s.relid "
            "LEFT JOIN pg_class p ON p.oid = i.inhparent GROUP BY 1"
        )
        return {name: (int(i), int(u), int(d)) for name, i, u, d in rows}

    say(f"bench-soak: {sweeps} sweeps of {clients:,} clients, one per {SECONDS_PER_SWEEP} s of production time "
        f"(PostgreSQL {connection.cursor().connection.info.server_version})")  # fmt: skip
    say(
        f"write rule: ratio step {settings.SWEEP_RATIO_STEP}, interval {settings.SWEEP_WRITE_INTERVAL_SECONDS} s"
    )
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    seed_market(say)
    positions = seed_book(clients, say)
    derive_balances(say)
    sweep_run(trigger="bench-seed")
    seed_debt(say)
    derive_balances(say)
    monitoring_cycle_run(trigger="bench-baseline")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    say(
        f"book of {positions:,} positions seeded, valued and vacuumed in {time.perf_counter() - started:.0f} s"
    )

    rng = random.Random(20261206)
    assets = {symbol: Asset.objects.get(pk=symbol) for symbol in ("BTC", "ETH")}
    clock = SimulatedClock(timezone.now())
    real_timezone = sweep_module.timezone
    sweep_module.timezone = clock
    quiet = monitoring_cycle_run(symbols=["BTC", "ETH"], trigger="soak-quiet")  # as production stands
    say(f"a quiet sweep first: {quiet.states_changed} states, {quiet.snapshots_written} snapshots")

    tables = table_writes()
    lsn_start = wal_lsn()
    times, wal, growth, states, snapshots, kinds, rows = [], [], [], [], [], [], []
    try:
        for n in range(1, sweeps + 1):
            clock.tick()
            large = n % large_every == large_every // 2  # now and then a move of about a percent
            moves = {}
            lsn, size = wal_lsn(), database_bytes()
            with transaction.atomic():
                for symbol, asset in assets.items():
                    # σ 3 basis points: BTC's daily σ of about 3% over the 8,640 ten-second steps of a day
                    step = rng.choice([-1, 1]) * rng.uniform(0.008, 0.015) if large else rng.gauss(0, 0.0003)
                    current = CurrentPrice.objects.select_related("price").get(asset=asset).price.price
                    price = (current * Decimal(1 + step)).quantize(Decimal("0.01"))
                    moves[symbol] = step
                    refresh = uuid.uuid4()
                    PriceQuote.objects.bulk_create(
                        PriceQuote(refresh_id=refresh, venue=venue, asset=asset, market=f"{symbol}/USD", price=price,
                                   currency="USD", quoted_at=timezone.now(), received_at=timezone.now(),
                                   status="accepted")
                        for venue in VENUES
                    )  # fmt: skip
                    price_record(asset=asset, price=price, source="soak", actor=SYSTEM)
            sweep_started = time.perf_counter()
            result = monitoring_cycle_run(symbols=list(assets), trigger="soak")
            times.append(time.perf_counter() - sweep_started)
            wal.append(wal_bytes_since(lsn))
            growth.append(database_bytes() - size)
            states.append(result.states_changed)
            snapshots.append(result.snapshots_written)
            kinds.append("large" if large else "small")
            now_tables = table_writes()
            rows.append({t: sum(v) - sum(tables.get(t, (0, 0, 0))) for t, v in now_tables.items()})
            tables = now_tables
            say(
                f"sweep {n:>4}{'*' if large else ' '}: BTC {moves['BTC'] * 1e4:+7.1f} bp, ETH {moves['ETH'] * 1e4:+7.1f} bp; "
                f"{times[-1]:.3f} s; {result.facilities_valued:,} valued, {result.states_changed:,} states, "
                f"{result.snapshots_written:,} snapshots, {result.ladder_actions:,} ladder actions, "
                f"{sum(rows[-1].values()):,} rows; "
                f"WAL {wal[-1] / 1e6:.2f} MB, database {growth[-1] / 1e6:+.2f} MB"
            )
        # The single sweep the p99 is held against: make bench's BTC -10%, on this book, on this machine, now.
        clock.tick()
        with transaction.atomic():
            current = CurrentPrice.objects.select_related("price").get(asset=assets["BTC"]).price.price
            price_record(asset=assets["BTC"], price=(current * Decimal("0.9")).quantize(Decimal("0.01")),
                         source="soak: BTC -10%", actor=SYSTEM)  # fmt: skip
        single_started = time.perf_counter()
        single = monitoring_cycle_run(symbols=["BTC"], trigger="soak-single")
        single_s = time.perf_counter() - single_started
        say(
            f"single sweep after BTC -10% (make bench's move), for the p99: {single_s:.3f} s; "
            f"{single.states_changed:,} states, {single.snapshots_written:,} snapshots, "
            f"{single.ladder_actions:,} ladder actions"
        )
    finally:
        sweep_module.timezone = real_timezone
    total_wal = wal_bytes_since(lsn_start)

    def per_day(values: list[float]) -> float:
        """The day's total: the mean of the small sweeps times the day's small ones, and of the large ones
        times the day's large ones."""
        small = [v for v, kind in zip(values, kinds, strict=True) if kind == "small"]
        large = [v for v, kind in zip(values, kinds, strict=True) if kind == "large"]
        day = statistics.fmean(small) * (SWEEPS_PER_DAY - large_per_day) if small else 0.0
        return day + (statistics.fmean(large) * large_per_day if large else 0.0)

    say(f"\nrows written per table: over the {sweeps} sweeps ({kinds.count('large')} large), and per day")
    for table in sorted({t for r in rows for t in r}):
        counts = [r.get(table, 0) for r in rows]
        if any(counts):
            say(f"  {table:<36} {sum(counts):>10,}   → {per_day(counts):>14,.0f} a day")
    rows_per_day = per_day([sum(r.values()) for r in rows])
    sizes = query(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND (c.relname IN "
        "('financing_marginstate', 'collateral_pricequote', 'collateral_price') "
        "OR c.relname LIKE 'financing_ratiosnapshot%%') ORDER BY 1"
    )
    snapshot_bytes = sum(size for name, size in sizes if name.startswith("financing_ratiosnapshot"))
    say(
        "sizes now (tables with their indexes): "
        + ", ".join(
            f"{name} {size / 1e6:.1f} MB"
            for name, size in sizes
            if not name.startswith("financing_ratiosnapshot")
        )
        + f", financing_ratiosnapshot (all partitions) {snapshot_bytes / 1e6:.1f} MB"
    )

    p99 = day_quantile(times, kinds, 0.99, large_per_day)
    soak_p99 = statistics.quantiles(times, n=100, method="inclusive")[98] if len(times) >= 2 else times[0]
    wal_gb_per_day = per_day(wal) / 1e9
    storage_gb_per_day = per_day(growth) / 1e9
    total_growth = sum(growth)
    say(
        f"sweeps: median {statistics.median(times):.3f} s, p99 of the soak {soak_p99:.3f} s, p99 of a day "
        f"{p99:.3f} s, max {max(times):.3f} s; "
        f"states {sum(states):,} and snapshots {sum(snapshots):,} in all; WAL {total_wal / 1e6:.1f} MB, "
        f"database {total_growth / 1e6:+.1f} MB over {sweeps * SECONDS_PER_SWEEP} s of production time"
    )
    say(
        f"soak_rows_per_day={rows_per_day:.0f} wal_gb_per_day={wal_gb_per_day:.2f} "
        f"storage_gb_per_day={storage_gb_per_day:.2f} sweep_s_p99={p99:.3f} clients={clients} sweeps={sweeps} "
        f"large_per_day={large_per_day} single_sweep_s={single_s:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
