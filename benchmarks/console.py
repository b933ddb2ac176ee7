"""``make bench-console``: the staff console's server time on the 100,000-client bench book
(``benchmarks/seed.py``), swept, then BTC down 20% and swept again with the ladder, so that thousands of
facilities are at warning or worse and calls are open. Prints the median and p95 of the firm overview (its
selector alone, the page and its polled fragment) and of the first page of the at-risk list (by BTC move and
by ratio, and filtered by an asset). Goal: under 200 ms each. Method and figures: docs/benchmarks.md."""

from __future__ import annotations

import os
import statistics
import time

import django

RUNS = int(os.environ.get("BENCH_CONSOLE_RUNS", "30"))


def say(message: str) -> None:
    print(message, flush=True)


def timed(label: str, run, runs: int = RUNS) -> float:
    run()  # warm: templates compiled, caches filled
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    median = statistics.median(times)
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    say(f"{label:<52} median {median:7.1f} ms   p95 {p95:7.1f} ms   ({runs} runs)")
    return median


def main() -> int:
    clients = int(os.environ.get("BENCH_CLIENTS", "100000"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")
    django.setup()

    from decimal import Decimal

    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client as Browser
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts import roles
    from accounts.audit import SYSTEM
    from accounts.models import User
    from benchmarks.seed import derive_balances, seed_book, seed_debt, seed_market
    from collateral.models import Asset
    from collateral.services import price_record
    from console.selectors import AtRiskFilters, at_risk_page, firm_overview
    from financing.models import MarginCall, MarginState, SweepRun
    from financing.monitoring.cycle import monitoring_cycle_run

    say(f"bench-console: the staff console on {clients:,} clients")
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    seed_market(say)
    seed_book(clients, say)
    derive_balances(say)
    monitoring_cycle_run(trigger="bench-seed")  # the drawdowns are sized on the first valuation
    seed_debt(say)
    derive_balances(say)
    monitoring_cycle_run(trigger="bench-baseline")
    btc = Asset.objects.get(pk="BTC")
    price_record(asset=btc, price=Decimal("78400"), source="bench", actor=SYSTEM)  # BTC −20%
    shock = time.perf_counter()
    monitoring_cycle_run(symbols=["BTC"], trigger="bench-shock")
    say(f"  BTC −20% swept with the ladder in {time.perf_counter() - shock:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    counts = dict(
        MarginState.objects.values_list("status").annotate(n=django.db.models.Count("pk")).order_by()
    )
    say(
        f"book ready in {time.perf_counter() - started:.0f} s: margin states {counts}, "
        f"open calls {MarginCall.objects.filter(status__in=['issued', 'escalated']).count():,}"
    )

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    risk = User.objects.create_user(username="bench-risk", password="bench-pass-2026", is_staff=True)
    roles.roles_sync()
    risk.groups.add(Group.objects.get(name=roles.RISK_OFFICER))
    browser = Browser()
    browser.force_login(risk)
    device = TOTPDevice.objects.create(user=risk, name="bench", confirmed=True)
    session = browser.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()

    def get(url: str):
        def run():
            response = browser.get(url)
            assert response.status_code == 200, (url, response.status_code)

        return run

    from django.db import transaction
    from django.utils import timezone

    from console.selectors.overview import (
        firm_aggregates,
        largest_client_loan,
        last_finished_sweep,
        margin_status_counts,
        price_health,
    )
    from financing.monitoring.totals import firm_totals_record
    from financing.monitoring.watchdog import sweep_health
    from financing.selectors import total_margin_loans

    sweep = last_finished_sweep()
    for label, part in [
        ("total lending, added up from the ledger", total_margin_loans),
        ("largest client, from the ledger", largest_client_loan),
        ("counts by status, from the states", margin_status_counts),
        ("price health", price_health),
        ("sweep health", sweep_health),
    ]:
        timed(f"  overview part: {label}", part, runs=5)
    # Before and after side by side: the overview's figures added up from the ledger and the states (what
    # every first read after a sweep did, and still does before any sweep has written its totals), and read
    # from the row of totals the sweep wrote.
    timed(
        "  overview figures: added up (no totals row)", lambda: firm_aggregates(timezone.now(), None), runs=5
    )
    timed(
        "  overview figures: from the sweep's totals row",
        lambda: firm_aggregates(timezone.now(), sweep),
        runs=5,
    )

    def totals_written(status_changes):
        def run():
            with transaction.atomic():  # a run of its own, rolled back
                made = SweepRun.objects.create(
                    trigger="bench-totals", scope="moved", started_at=timezone.now()
                )
                carried = status_changes is not None
                firm_totals_record(made, status_changes=status_changes, listed_change=1 if carried else None)
                transaction.set_rollback(True)

        return run

    timed("  the sweep's totals: carried forward (a price move)", totals_written({"ok": -1, "warning": 1}))
    timed("  the sweep's totals: counted afresh (a full sweep)", totals_written(None), runs=5)
    from django.core.cache import cache

    def afresh(compute):
        def run():
            cache.clear()  # what the first poll after a sweep does: nothing kept yet
            compute()

        return run

    overview_miss = timed("firm overview: first read after a sweep", afresh(firm_overview), runs=5)
    overview = timed("firm overview: selector (kept for the sweep)", firm_overview)
    overview_page = timed("firm overview: page (GET /console/)", get("/console/"))
    timed("firm overview: polled fragment", get("/console/overview/live/"))
    first = at_risk_page(AtRiskFilters())
    say(f"at-risk list: {first.total:,} facilities, {first.pages:,} pages")
    at_risk_miss = timed(
        "at-risk, first page: first read after a sweep", afresh(lambda: at_risk_page(AtRiskFilters())), runs=5
    )
    timed(
        "at-risk, first page by ratio: first read after a sweep",
        afresh(lambda: at_risk_page(AtRiskFilters(order="ratio"))),
        runs=5,
    )
    at_risk = timed(
        "at-risk, first page: selector (kept for the sweep)", lambda: at_risk_page(AtRiskFilters())
    )
    at_risk_rows = timed("at-risk, first page: polled rows (by BTC move)", get("/console/at-risk/rows/"))
    timed("at-risk, first page: polled rows (by ratio)", get("/console/at-risk/rows/?order=ratio"))
    timed("at-risk, first page: page (GET /console/at-risk/)", get("/console/at-risk/"))
    timed("at-risk, holders of S003.HK, by BTC move", get("/console/at-risk/rows/?asset=S003.HK"))
    timed("at-risk, margin calls only", get("/console/at-risk/rows/?status=margin_call"))
    say(
        f"bench_console overview_median_ms={overview_page:.1f} overview_selector_median_ms={overview:.1f} "
        f"at_risk_first_page_median_ms={at_risk_rows:.1f} at_risk_selector_median_ms={at_risk:.1f} "
        f"overview_after_sweep_median_ms={overview_miss:.1f} at_risk_after_sweep_median_ms={at_risk_miss:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
