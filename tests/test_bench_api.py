"""``make bench-api`` must keep running (it rotted once, when production began to demand PRICE_VENUES): the
load test, for a few seconds, on a database of its own, with the figures and the summary line it prints.
Only that it runs and checks what it checks; how fast is for the bench itself (docs/benchmarks.md)."""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
def bench_database():
    """A new, empty database for the bench, owned by the owner of the tables, dropped afterwards."""
    app_url = os.environ["DATABASE_URL"]
    owner_url = os.environ.get("DATABASE_OWNER_URL", app_url)
    name = f"bench_api_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(owner_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(app_url, name), with_database(owner_url, name)
    finally:
        with psycopg.connect(owner_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_bench_api_runs_and_prints_the_floor_the_reads_the_drawdowns_and_its_summary(bench_database):
    app_url, owner_url = bench_database
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PRICE_VENUES", "FORCED_SALE_VENUE"))
    }
    env.update(DATABASE_URL=app_url, DATABASE_OWNER_URL=owner_url)
    result = subprocess.run(
        [
            sys.executable,
            "scripts/bench_api.py",
            "--duration",
            "2",
            "--phase-seconds",
            "1",
            "--facilities",
            "4",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"floor \(whoami\): requests=[1-9]\d* rps=[\d.]+ p50_ms=[\d.]+ p99_ms=[\d.]+", output), (
        output
    )
    assert re.search(r"    facility reads: requests=[1-9]\d* rps=[\d.]+", output), output
    assert re.search(r"    drawdowns: p50_ms=[\d.]+ p99_ms=[\d.]+", output), output
    assert "==> checked: no facility over its limit" in output, output
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"requests=[1-9]\d* rps=[\d.]+ p50_ms=[\d.]+ p99_ms=[\d.]+ errors_5xx=0 over_limit=0 "
        r"floor_rps=[\d.]+ read_rps=[\d.]+ read_to_floor=[\d.]+ read_p99_ms=[\d.]+ drawdown_p99_ms=[\d.]+",
        summary,
    ), output
