"""``make bench-portal``: the client portal's server time for a client with ten positions and a year of ratio
snapshots taken every 10 seconds, kept as the retention task keeps them (the last RETENTION_RAW_SNAPSHOT_DAYS
days raw — 8,640 a day —, hourly rollups back to RETENTION_HOURLY_ROLLUP_DAYS, daily ones before that).
Prints the median and p95 of the overview page, its polled figures, the what-if, and the history page and its
chart's data over one year. The method and the latest figures are in docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import statistics
import time
import traceback

import django

RUNS = int(os.environ.get("BENCH_PORTAL_RUNS", "40"))
PROFILE = os.environ.get("BENCH_PORTAL_PROFILE", "") not in ("", "0")  # queries and cProfile, no timings


def say(message: str) -> None:
    print(message, flush=True)


def timed(label: str, run, runs: int = RUNS) -> float:
    """The median wall time of ``run`` in ms, printed with its p95, this process's CPU time (the Python side
    alone, steadier than the wall on a loaded machine) and the queries one run makes."""
    from django.db import connection

    queries = []  # counted by a wrapper: the test client clears connection.queries as each request starts

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    run()  # warm: the first request compiles templates and fills caches
    with connection.execute_wrapper(count):
        run()
    times, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        cpu.append((time.process_time() - started_cpu) * 1000)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    median = statistics.median(times)
    say(
        f"{label:<44} median {median:7.1f} ms   p95 {times[int(len(times) * 0.95) - 1]:7.1f} ms   "
        f"cpu {statistics.median(cpu):6.1f} ms   {len(queries):3d} queries   ({runs} runs)"
    )
    return median


def profile(browser, url: str) -> None:
    """What one request spends: its queries (count and time) and where Python spends it (cProfile)."""
    import cProfile
    import io
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    callers = []

    def caller(execute, sql, params, many, context):
        frames = [
            f
            for f in traceback.extract_stack()
            if f.filename.startswith(project) and "/.venv/" not in f.filename
        ]
        callers.append(
            " < ".join(f"{os.path.relpath(f.filename, project)}:{f.lineno}" for f in frames[-3:][::-1])
        )
        return execute(sql, params, many, context)

    browser.get(url)  # warm
    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(caller):
        browser.get(url)
    database_ms = sum(float(query["time"]) for query in queries.captured_queries) * 1000
    say(f"--- {url}: {len(queries)} queries, {database_ms:.1f} ms in the database")
    for query, where in zip(queries.captured_queries, callers, strict=True):
        say(f"  {float(query['time']) * 1000:6.1f} ms  {query['sql'][:70]:<70}  {where[:150]}")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(10):
        browser.get(url)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(
        r"portal|financing|collateral|web/|accounts|template/(base|loader_tags|defaulttags)|sessions|translation|psycopg/cursor",
        60,
    )
    say(out.getvalue())


def seed():
    """One client with ten positions, a debt and a year of snapshots as retention keeps them: (user, facility)."""

    from decimal import Decimal

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.audit import SYSTEM
    from accounts.enums import ClientKind, KycStatus
    from accounts.services import client_create, client_user_create
    from collateral.models import Asset
    from collateral.services import asset_create, collateral_deposit, fx_rate_record, pool_open, price_record
    from core.money import HKD
    from financing.lending.services import facility_open
    from financing.models import RatioRollup, RatioSnapshot, RetentionMark
    from ledger.enums import AccountKind, TransactionKind
    from ledger.services import LegSpec, firm_account, transaction_post

    call_command("migrate", verbosity=0)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    assets = [
        ("HKD", "cash", "HKD", 2, "0", None, "250000"),
        ("USD", "cash", "USD", 2, "0.02", None, "20000"),
        ("BTC", "crypto", "USD", 8, "0.60", None, "2"),
        ("ETH", "crypto", "USD", 18, "0.65", None, "30"),
        ("0700.HK", "security", "HKD", 0, "0.30", "0.50", "3000"),
        ("0005.HK", "security", "HKD", 0, "0.25", "0.50", "8000"),
        ("0388.HK", "security", "HKD", 0, "0.30", "0.50", "2000"),
        ("2800.HK", "security", "HKD", 0, "0.20", None, "20000"),
        ("9988.HK", "security", "HKD", 0, "0.35", None, "5000"),
        ("1299.HK", "security", "HKD", 0, "0.30", "0.50", "6000"),
    ]
    prices = {"BTC": "98000", "ETH": "3400", "0700.HK": "400", "0005.HK": "98", "0388.HK": "300",
              "2800.HK": "25", "9988.HK": "85", "1299.HK": "70"}  # fmt: skip
    for symbol, kind, currency, decimals, haircut, limit, _ in assets:
        if not Asset.objects.filter(pk=symbol).exists():
            asset_create(
                symbol=symbol, name=symbol, kind=kind, currency=currency, decimals=decimals, haircut=haircut,
                lot_size="1" if kind == "security" else "0.01", concentration_limit=limit, actor=SYSTEM,
            )  # fmt: skip
    fx_rate_record(currency="USD", rate="7.8", source="bench", actor=SYSTEM)
    for symbol, value in prices.items():
        price_record(asset=Asset.objects.get(pk=symbol), price=value, source="bench", actor=SYSTEM)
    client = client_create(
        actor=SYSTEM,
        name="Bench Portal Client Ltd",
        kind=ClientKind.CORPORATION,
        kyc_status=KycStatus.APPROVED,
    )
    user = client_user_create(
        client=client, username=f"bench-{client.pk}", password="bench-pass-2026", email="", actor=SYSTEM
    )
    facility = facility_open(client=client, limit="20000000", fixed_rate="0.068", actor=SYSTEM)
    pool = pool_open(client=client, actor=SYSTEM)
    for symbol, *_, quantity in assets:
        collateral_deposit(pool=pool, asset=Asset.objects.get(pk=symbol), quantity=quantity, actor=SYSTEM)
    transaction_post(  # the debt, as a drawdown posts it (the bench needs no credit approval)
        kind=TransactionKind.DRAWDOWN,
        legs=[
            LegSpec(facility.principal_account, HKD, Decimal("3000000")),
            LegSpec(firm_account(AccountKind.CASH_SETTLEMENT), HKD, Decimal("-3000000")),
        ],
        memo="bench drawdown",
        actor=SYSTEM,
    )

    now = timezone.now()
    raw_days, hourly_days = settings.RETENTION_RAW_SNAPSHOT_DAYS, settings.RETENTION_HOURLY_ROLLUP_DAYS
    started = time.perf_counter()
    with connection.cursor() as cursor:
        snapshot, rollup = RatioSnapshot._meta.db_table, RatioRollup._meta.db_table
        values = ("1250000.00 + 50000 * sin(n / 5000.0)", "900000.00", "750000.00",
                  "0.83 + 0.05 * sin(n / 5000.0)")  # fmt: skip
        cursor.execute(
            f"INSERT INTO {snapshot} (facility_id, taken_at, market_value, margin_value, debt, margin_ratio, status) "
            f"SELECT %s, %s - n * interval '10 seconds', {values[0]}, {values[1]}, {values[2]}, {values[3]}, 'ok' "
            "FROM generate_series(0, %s) AS n",
            [facility.pk, now, raw_days * 8640],
        )
        for period, step, first, last in (("hour", 3600, raw_days * 24, hourly_days * 24),
                                          ("day", 86400, hourly_days, 365)):  # fmt: skip
            cursor.execute(
                f"INSERT INTO {rollup} (facility_id, period, starts_at, taken_at, market_value, margin_value, debt, "
                "margin_ratio, status, lowest_ratio, highest_ratio, snapshots) "
                f"SELECT %s, %s, %s - n * %s * interval '1 second', %s - (n - 1) * %s * interval '1 second' "
                f"- interval '10 seconds', {values[0]}, {values[1]}, {values[2]}, {values[3]}, 'ok', 0.78, 0.88, %s "
                "FROM generate_series(%s, %s) AS n",
                [facility.pk, period, now, step, now, step, step // 10, first + 1, last],
            )
        cursor.execute("ANALYZE")
    RetentionMark.objects.update_or_create(
        name="raw snapshots kept from", defaults={"at": now - datetime.timedelta(days=raw_days)}
    )
    RetentionMark.objects.update_or_create(
        name="hourly rollups kept from", defaults={"at": now - datetime.timedelta(days=hourly_days)}
    )
    say(
        f"bench-portal: 1 client, 10 positions, a year of 10-second snapshots as kept: "
        f"{RatioSnapshot.objects.filter(facility_id=facility.pk).count():,} raw ({raw_days} days), "
        f"{RatioRollup.objects.filter(facility_id=facility.pk, period='hour').count():,} hourly, "
        f"{RatioRollup.objects.filter(facility_id=facility.pk, period='day').count():,} daily "
        f"(seeded in {time.perf_counter() - started:.1f} s)"
    )

    return user, facility


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")
    django.setup()

    from django.test import Client as Browser

    from portal.selectors import ratio_chart

    user, facility = seed()
    browser = Browser()
    browser.force_login(user)
    base = f"/portal/facilities/{facility.pk}"
    if PROFILE:
        for url in (f"{base}/", f"{base}/figures/", f"{base}/history/?range=1y", f"{base}/history/?range=1d"):
            profile(browser, url)
        return 0

    def get(url: str):
        def run():
            response = browser.get(url)
            assert response.status_code == 200, (url, response.status_code)

        return run

    overview = timed("overview page (GET /portal/facilities/<id>/)", get(f"{base}/"))
    timed("overview figures (polled every 5 s)", get(f"{base}/figures/"))
    timed(
        "what-if (BTC −30%, ETH −20%, equities −10%)", get(f"{base}/what-if/?btc=-30&eth=-20&securities=-10")
    )
    points = len(ratio_chart(facility, "1y").points)
    year_chart = timed(
        f"year chart's data (ratio_chart, {points} points)", lambda: ratio_chart(facility, "1y")
    )
    timed("history page, 1 year (chart + activity)", get(f"{base}/history/?range=1y"))
    timed("history page, 1 day", get(f"{base}/history/?range=1d"))
    say(f"bench_portal overview_median_ms={overview:.1f} year_chart_median_ms={year_chart:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
