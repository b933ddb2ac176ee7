"""Periodic work for oversight: the monthly run of the stress-test library (a beat schedule staff edit in the
admin, audited by financing.monitoring.schedules)."""

from __future__ import annotations

from celery import shared_task

from oversight.enums import StressTrigger
from oversight.stress import stress_library_run


@shared_task(name="oversight.stress_library_run", soft_time_limit=1800, time_limit=2400)
def stress_library_run_task() -> dict:
    """Run every active scenario on the live book; the runs' ids by scenario."""
    return {run.scenario.key: run.pk for run in stress_library_run(trigger=StressTrigger.SCHEDULED)}
