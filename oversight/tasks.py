"""Periodic work for oversight: the monthly run of the stress-test library and the daily margin report after
the close (beat schedules staff edit in the admin, audited by financing.monitoring.schedules)."""

from __future__ import annotations

import datetime

from celery import shared_task
from django.utils import timezone

from core.calendar import is_business_day
from oversight.enums import StressTrigger
from oversight.reports import HONG_KONG, daily_report_make
from oversight.stress import stress_library_run


@shared_task(name="oversight.stress_library_run", soft_time_limit=1800, time_limit=2400)
def stress_library_run_task() -> dict:
    """Run every active scenario on the live book; the runs' ids by scenario."""
    return {run.scenario.key: run.pk for run in stress_library_run(trigger=StressTrigger.SCHEDULED)}


@shared_task(name="oversight.daily_report", soft_time_limit=900, time_limit=1200)
def daily_report_task(day: str | None = None) -> int | None:
    """The day's margin financing report (today in Hong Kong unless ``day`` is given), kept and e-mailed to
    staff; nothing on a day that is not a Hong Kong business day. The report's id."""
    if day is None:
        today = timezone.localdate(timezone=HONG_KONG)
        if not is_business_day(today):
            return None
        chosen = today
    else:
        chosen = datetime.date.fromisoformat(day)
    return daily_report_make(day=chosen, trigger=StressTrigger.SCHEDULED, email=True).pk
