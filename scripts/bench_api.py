#!/usr/bin/env python3
"""Load test of the REST API: gunicorn (2 workers) on PostgreSQL, driven from this process.

Run it with ``make bench-api``; the method and the latest figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def say(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment() -> dict[str, str]:
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} is not set: run this through `make bench-api` (scripts/services.py).")
    database_url = os.environ["DATABASE_URL"]
    if "conn_max_age" not in database_url:
        # Persistent connections, as a production deployment configures them.
        database_url += ("&" if "?" in database_url else "?") + "conn_max_age=60"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", os.environ["REDIS_URL"]),
        "LOG_LEVEL": "WARNING",
        # Production refuses to start without venues; the load test asks none (no oracle, no sale runs).
        "PRICE_VENUES": json.dumps([BENCH_VENUE, {**BENCH_VENUE, "name": "bench-2"}]),
        "FORCED_SALE_VENUE": json.dumps(BENCH_VENUE),
        "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
    }


BENCH_VENUE = {"name": "bench-1", "exchange": "bitstamp", "markets": {"BTC": "BTC/USD"}}


# --- seeding (through the services, as the platform itself does it) --------------------------------


def seed(count: int, facility_limit: str, credit_limits: tuple[str, str]) -> tuple[list[int], str]:
    import datetime

    from django.contrib.auth.models import Group
    from django.utils import timezone

    from accounts.audit import SYSTEM
    from accounts.models import ApprovalRequest, User
    from accounts.roles import CREDIT_OFFICER, roles_sync
    from accounts.services import (
        approval_request_approve,
        client_create,
        credit_limit_change_request,
        credit_profile_create,
    )
    from api.services import api_key_create
    from collateral.models import Asset
    from collateral.services import asset_create, collateral_deposit, fx_rate_record, pool_open, price_record
    from financing.lending.services import facility_open

    roles_sync()
    officers = []
    for name in ("bench-maker", "bench-checker"):
        user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": True})
        user.groups.add(Group.objects.get(name=CREDIT_OFFICER))
        officers.append(User.objects.get(pk=user.pk))
    maker, checker = officers
    if not Asset.objects.filter(pk="BTC").exists():
        asset_create(
            symbol="HKD",
            name="Hong Kong dollar",
            kind="cash",
            currency="HKD",
            decimals=2,
            haircut="0",
            lot_size="0.01",
            actor=SYSTEM,
        )
        asset_create(
            symbol="BTC",
            name="Bitcoin",
            kind="crypto",
            currency="USD",
            decimals=8,
            haircut="0.60",
            lot_size="0.00000001",
            actor=SYSTEM,
        )
        asset_create(
            symbol="0700.HK",
            name="Tencent",
            kind="security",
            currency="HKD",
            decimals=0,
            haircut="0.30",
            lot_size="100",
            concentration_limit="0.5",
            actor=SYSTEM,
        )
        fx_rate_record(currency="USD", rate="7.8", source="bench", actor=SYSTEM)
        price_record(asset=Asset.objects.get(pk="BTC"), price="100000", source="bench", actor=SYSTEM)
        price_record(asset=Asset.objects.get(pk="0700.HK"), price="400", source="bench", actor=SYSTEM)
    assets = {asset.symbol: asset for asset in Asset.objects.all()}
    facility_ids = []
    today = timezone.localdate()
    for index in range(count):
        client = client_create(
            actor=maker,
            name=f"Bench client {index:03d}",
            kind="corporation",
            kyc_status="approved",
            pi_portfolio_value="20000000.00",
            pi_assessed_on=today - datetime.timedelta(days=10),
        )
        profile = credit_profile_create(
            client=client,
            internal_rating="A",
            next_review_on=today + datetime.timedelta(days=180),
            actor=maker,
        )
        # Half the clients are held by their facility limit, half by a tighter approved credit limit.
        credit_limit = credit_limits[index % 2]
        request = credit_limit_change_request(profile=profile, credit_limit=credit_limit, actor=maker)
        approval_request_approve(request=ApprovalRequest.objects.get(pk=request.pk), actor=checker)
        facility = facility_open(client=client, limit=facility_limit, fixed_rate="0.065", actor=maker)
        pool = pool_open(client=client, actor=SYSTEM)
        # LV: BTC 312,000 + Tencent 280,000 + cash 300,000 = 892,000; max advance 85% = 758,200.
        collateral_deposit(pool=pool, asset=assets["BTC"], quantity="1", actor=SYSTEM)
        collateral_deposit(pool=pool, asset=assets["0700.HK"], quantity="1000", actor=SYSTEM)
        collateral_deposit(pool=pool, asset=assets["HKD"], quantity="300000.00", actor=SYSTEM)
        facility_ids.append(facility.pk)
    _, raw_key = api_key_create(
        name=f"bench-{uuid.uuid4().hex[:8]}",
        scopes=["read", "lending"],
        actor=SYSTEM,
        throttle_rate="10000000/min",
    )
    return facility_ids, raw_key


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    read_latencies: list[float] = field(default_factory=list)
    write_latencies: list[float] = field(default_factory=list)
    lent_latencies: list[float] = field(default_factory=list)  # drawdowns answered 201
    refused_latencies: list[float] = field(default_factory=list)  # drawdowns answered 422
    statuses: dict[int, int] = field(default_factory=dict)
    acknowledged: list[int] = field(default_factory=list)  # drawdown ids answered 201
    refusals: dict[str, int] = field(default_factory=dict)  # 422s by error code
    failures: int = 0  # no answer at all
    reads: int = 0
    writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        status: int,
        latency: float,
        *,
        write: bool,
        drawdown_id: int | None = None,
        refusal: str | None = None,
    ) -> None:
        with self.lock:
            if refusal is not None:
                self.refusals[refusal] = self.refusals.get(refusal, 0) + 1
            self.latencies.append(latency)
            (self.write_latencies if write else self.read_latencies).append(latency)
            if write and status in (201, 422):
                (self.lent_latencies if status == 201 else self.refused_latencies).append(latency)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if write:
                self.writes += 1
            else:
                self.reads += 1
            if drawdown_id is not None:
                self.acknowledged.append(drawdown_id)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def drive(
    port: int,
    raw_key: str,
    facility_ids: list[int],
    *,
    mode: str,
    amount: str,
    write_share: float,
    deadline: float,
    tally: Tally,
    seed_: int,
) -> None:
    """One client thread until ``deadline``. ``mode``: ``floor`` (the bare authenticated endpoint), ``reads``
    (facility reads only) or ``mixed`` (facility reads and drawdowns)."""
    rng = random.Random(seed_)
    headers = {"Authorization": f"Bearer {raw_key}", "Accept": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < deadline:
        facility_id = rng.choice(facility_ids)
        write = mode == "mixed" and rng.random() < write_share
        started = time.perf_counter()
        try:
            if write:
                body = json.dumps({"facility": facility_id, "amount": amount})
                connection.request(
                    "POST",
                    "/api/v1/drawdowns/",
                    body=body,
                    headers={
                        **headers,
                        "Content-Type": "application/json",
                        "Idempotency-Key": str(uuid.uuid4()),
                    },
                )
            elif mode == "floor":
                connection.request("GET", "/api/v1/whoami/", headers=headers)
            else:
                connection.request("GET", f"/api/v1/facilities/{facility_id}/", headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            with tally.lock:
                tally.failures += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latency = time.perf_counter() - started
        body = json.loads(payload) if write and response.status in (201, 422) else {}
        tally.record(
            response.status,
            latency,
            write=write,
            drawdown_id=body.get("id") if response.status == 201 else None,
            refusal=body["error"]["code"] if response.status == 422 else None,
        )
    connection.close()


def run_phase(
    port: int, raw_key: str, facility_ids: list[int], *, mode: str, seconds: float, args, progress: bool
) -> tuple[Tally, float]:
    """``args.concurrency`` client threads in ``mode`` for ``seconds``; the tally and the elapsed time."""
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds
    threads = [
        threading.Thread(
            target=drive,
            args=(port, raw_key, facility_ids),
            kwargs={
                "mode": mode,
                "amount": args.amount,
                "write_share": args.write_share,
                "deadline": deadline,
                "tally": tally,
                "seed_": n,
            },
            daemon=True,
        )
        for n in range(args.concurrency)
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        time.sleep(min(2.0, max(0.05, deadline - time.monotonic())))
        if not progress:
            continue
        with tally.lock:
            done, latencies = len(tally.latencies), list(tally.latencies[-2000:])
        elapsed = time.monotonic() - started
        say(
            f"    t={elapsed:5.1f}s requests={done} rps={done / elapsed:.0f} "
            f"p50_ms={percentile(latencies, 0.5) * 1000:.1f} p99_ms={percentile(latencies, 0.99) * 1000:.1f}"
        )
    return tally, time.monotonic() - started


def figures(name: str, tally: Tally, elapsed: float) -> str:
    values = tally.latencies
    return (
        f"    {name}: requests={len(values)} rps={len(values) / elapsed:.1f} "
        f"p50_ms={percentile(values, 0.5) * 1000:.1f} p99_ms={percentile(values, 0.99) * 1000:.1f}"
    )


def wait_until_serving(port: int, server: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited with code {server.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/v1/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("gunicorn did not answer in time")


# --- checks --------------------------------------------------------------------------------------


def check(facility_ids: list[int], acknowledged: list[int]) -> tuple[int, list[str]]:
    """How many facilities ended over a limit, and what else is wrong (in words)."""
    from django.conf import settings

    from accounts.models import CreditProfile
    from collateral.calculations import ratio_above
    from financing.models import Drawdown, Facility
    from financing.selectors import client_margin_loans, facility_debt, facility_valuation, total_margin_loans
    from ledger.selectors import balances_from_legs, balances_projected

    over, problems = 0, []
    for facility in Facility.objects.filter(pk__in=facility_ids).select_related("client"):
        debt = facility_debt(facility)
        valuation = facility_valuation(facility)
        credit_limit = CreditProfile.objects.get(client=facility.client).credit_limit.amount
        reasons = []
        if debt.principal > facility.limit.amount:
            reasons.append(f"principal {debt.principal} > facility limit {facility.limit.amount}")
        if client_margin_loans(facility.client) > credit_limit:
            reasons.append(f"loans > credit limit {credit_limit}")
        if ratio_above(valuation.debt.total, valuation.margin_value, valuation.thresholds.max_advance):
            reasons.append(f"margin ratio {valuation.margin_ratio} above max advance")
        if reasons:
            over += 1
            problems.append(f"{facility.reference}: {'; '.join(reasons)}")
    firm_cap = settings.BROKER_CAPITAL_HKD * settings.FIRM_LOAN_TO_CAPITAL_MULTIPLE
    if total_margin_loans() > firm_cap:
        problems.append(f"the firm's loans {total_margin_loans()} are above its cap {firm_cap}")
    recorded = set(Drawdown.objects.filter(facility_id__in=facility_ids).values_list("pk", flat=True))
    if len(acknowledged) != len(set(acknowledged)) or set(acknowledged) != recorded:
        problems.append(
            f"drawdowns answered 201: {len(acknowledged)}, recorded: {len(recorded)} "
            f"(missing {len(set(acknowledged) - recorded)}, unacknowledged {len(recorded - set(acknowledged))})"
        )
    lent = sum((d.amount.amount for d in Drawdown.objects.filter(facility_id__in=facility_ids)), Decimal(0))
    principal = sum(
        (facility_debt(f).principal for f in Facility.objects.filter(pk__in=facility_ids)), Decimal(0)
    )
    if lent != principal:
        problems.append(f"lent {lent} but the ledger holds {principal} of principal")
    if balances_projected() != balances_from_legs():
        problems.append("the ledger's balances differ from its legs")
    return over, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds of load (default 20)")
    parser.add_argument(
        "--phase-seconds",
        type=float,
        default=None,
        help="seconds of the floor and of the reads-only phase each (default: half of --duration)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--facilities", type=int, default=20, help="facilities seeded (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--write-share", type=float, default=0.2, help="share of requests that draw down")
    parser.add_argument("--amount", default="10000.00", help="HKD per drawdown (default 10000.00)")
    parser.add_argument("--facility-limit", default="100000.00", help="each facility's limit")
    parser.add_argument(
        "--credit-limits",
        default="120000.00,70000.00",
        help="approved credit limits, alternating between clients (the second binds before the facility's)",
    )
    args = parser.parse_args()
    if args.phase_seconds is None:
        args.phase_seconds = args.duration / 2

    env = environment()
    os.environ.update(env)
    say("==> migrating, collecting static files")
    migrate_env = {
        **env,
        "DATABASE_URL": os.environ.get("DATABASE_OWNER_URL", env["DATABASE_URL"]),
    }  # the owner
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=migrate_env,
        check=True,
    )
    import django

    django.setup()
    credit_limits = tuple(args.credit_limits.split(","))
    say(
        f"==> seeding {args.facilities} facilities: limit HK${args.facility_limit} each, credit limits "
        f"HK${' / HK$'.join(credit_limits)} in turn"
    )
    facility_ids, raw_key = seed(args.facilities, args.facility_limit, credit_limits)
    from django.db import connections

    connections.close_all()

    # --keep-alive 0: a connection per request, as behind a reverse proxy that does not keep upstream
    # connections open. With keep-alive, the eight client connections stay with whichever worker
    # accepted them first, and one worker does nearly all the work while the other idles.
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [
        str(gunicorn), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
        "--log-level", "warning", "--timeout", "60", "--keep-alive", "0",
    ]  # fmt: skip
    say(
        f"==> gunicorn: {args.workers} workers × {args.threads} threads on 127.0.0.1:{port} (config.settings.production)"
    )
    # The server's log goes to a file (Django logs each refused drawdown as a warning); errors in it are
    # reported at the end.
    server_log = Path(tempfile.mkdtemp(prefix="bench-api-")) / "gunicorn.log"
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=server_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_serving(port, server)
        say(
            f"==> the floor: {args.phase_seconds:.0f} s of GET /api/v1/whoami/ (the key check, nothing else), "
            f"then {args.phase_seconds:.0f} s of facility reads only, from {args.concurrency} threads each"
        )
        # A warm-up, untimed: each worker's first requests import and connect.
        run_phase(
            port,
            raw_key,
            facility_ids,
            mode="reads",
            seconds=min(1.0, args.phase_seconds),
            args=args,
            progress=False,
        )
        floor, floor_elapsed = run_phase(
            port, raw_key, facility_ids, mode="floor", seconds=args.phase_seconds, args=args, progress=False
        )
        say(figures("floor (whoami)", floor, floor_elapsed))
        reads, reads_elapsed = run_phase(
            port, raw_key, facility_ids, mode="reads", seconds=args.phase_seconds, args=args, progress=False
        )
        say(figures("facility reads", reads, reads_elapsed))
        say(
            f"==> driving for {args.duration:.0f} s from {args.concurrency} threads: "
            f"{1 - args.write_share:.0%} facility reads, {args.write_share:.0%} drawdowns of HK${args.amount}"
        )
        tally, elapsed = run_phase(
            port, raw_key, facility_ids, mode="mixed", seconds=args.duration, args=args, progress=True
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

    over_limit, problems = check(facility_ids, tally.acknowledged)
    log_lines = server_log.read_text(errors="replace").splitlines()
    server_errors = [
        line for line in log_lines if " ERROR " in line or "Traceback" in line or "[CRITICAL]" in line
    ]
    if server_errors:
        problems.append(
            f"the server logged {len(server_errors)} error(s), e.g. {server_errors[0]} (log: {server_log})"
        )
    statuses: dict[int, int] = {}
    for phase in (floor, reads, tally):
        for status, count in phase.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    errors_5xx = sum(count for status, count in statuses.items() if status >= 500)
    other = {status: count for status, count in sorted(statuses.items()) if status not in (200, 201, 422)}
    failures = floor.failures + reads.failures + tally.failures
    refused = ", ".join(f"{code} {count}" for code, count in sorted(tally.refusals.items())) or "none"
    say(
        f"==> reads={tally.reads} drawdowns={tally.writes}: lent {tally.statuses.get(201, 0)}, refused {refused}; "
        f"other statuses: {other or 'none'}; no answer: {failures}"
    )
    for name, values in (
        ("facility reads", tally.read_latencies),
        ("drawdowns", tally.write_latencies),
        (f"drawdowns lent ({len(tally.lent_latencies)})", tally.lent_latencies),
        (f"drawdowns refused ({len(tally.refused_latencies)})", tally.refused_latencies),
    ):
        say(
            f"    {name}: p50_ms={percentile(values, 0.5) * 1000:.1f} p99_ms={percentile(values, 0.99) * 1000:.1f}"
        )
    for problem in problems:
        say(f"!!! {problem}")
    if not problems:
        say(
            "==> checked: no facility over its limit; every drawdown answered 201 is recorded, nothing else; ledger balanced"
        )
    floor_rps = len(floor.latencies) / floor_elapsed
    read_rps = len(reads.latencies) / reads_elapsed
    say(
        f"==> facility reads at {read_rps / floor_rps if floor_rps else 0:.2f} × the floor's rate "
        f"(goal ≥ 0.50), read p99 {percentile(reads.latencies, 0.99) * 1000:.1f} ms (goal < 100), "
        f"drawdown p99 {percentile(tally.write_latencies, 0.99) * 1000:.1f} ms (goal < 200)"
    )
    total = len(tally.latencies)
    say(
        f"requests={total} rps={total / elapsed:.1f} p50_ms={percentile(tally.latencies, 0.5) * 1000:.1f} "
        f"p99_ms={percentile(tally.latencies, 0.99) * 1000:.1f} errors_5xx={errors_5xx} over_limit={over_limit} "
        f"floor_rps={floor_rps:.1f} read_rps={read_rps:.1f} read_to_floor={read_rps / floor_rps if floor_rps else 0:.2f} "
        f"read_p99_ms={percentile(reads.latencies, 0.99) * 1000:.1f} "
        f"drawdown_p99_ms={percentile(tally.write_latencies, 0.99) * 1000:.1f}"
    )
    failed = errors_5xx or over_limit or problems or failures or other
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
