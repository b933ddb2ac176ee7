"""The stress test on the first-run database (SQLite, ``config.settings.local``): the migrations apply and a run
finishes with the firm's figures those of its rows. The suite itself runs on PostgreSQL, so this runs in a
process of its own on a throwaway SQLite file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
from decimal import Decimal

import django

django.setup()
from django.core.management import call_command

call_command("migrate", verbosity=0)
call_command("seed_demo", verbosity=0)
from oversight.models import StressScenario
from oversight.stress import stress_run

run = stress_run(scenario=StressScenario.objects.order_by("pk").first())
rows = list(run.results.values_list("debt", "sale_proceeds", "shortfall"))
print(json.dumps({
    "status": run.status, "error": run.error, "facilities": run.facilities, "rows": len(rows),
    "sale_proceeds": str(run.sale_proceeds), "shortfall": str(run.shortfall),
    "repaid": str(run.lending - run.lending_after_sales),
    "rows_proceeds": str(sum((p for _, p, _ in rows), Decimal(0))),
    "rows_shortfall": str(sum((s for _, _, s in rows), Decimal(0))),
    "rows_repaid": str(sum((min(d, p) for d, p, _ in rows if p > 0), Decimal(0))),
}))
"""


def test_a_stress_run_finishes_on_the_first_run_database(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["status"], figures["error"]) == ("finished", "")
    assert figures["facilities"] == figures["rows"] > 0
    assert figures["sale_proceeds"] == figures["rows_proceeds"]
    assert figures["shortfall"] == figures["rows_shortfall"]
    assert figures["repaid"] == figures["rows_repaid"]
    assert figures["rows_proceeds"] != "0"  # the demo book has sales under the first scenario


@pytest.mark.django_db
def test_on_postgresql_the_rows_keep_room_on_each_page_for_their_plan():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'oversight_stressresult'")
        (options,) = cursor.fetchone()
    assert "fillfactor=70" in (options or [])
