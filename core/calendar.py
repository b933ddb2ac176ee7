"""Hong Kong business days, from the ``holidays`` library's Hong Kong calendar (public holidays,
observed days included); Saturdays and Sundays are not business days."""

from __future__ import annotations

import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

HONG_KONG = ZoneInfo("Asia/Hong_Kong")


@lru_cache(maxsize=64)
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("HK", years=year)


def is_business_day(day: datetime.date) -> bool:
    return day.weekday() < 5 and day not in _holidays(day.year)


@lru_cache(maxsize=1024)
def next_business_day(day: datetime.date, count: int = 1) -> datetime.date:
    """The ``count``-th business day after ``day`` (``day`` itself never counts)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    found = 0
    while found < count:
        day += datetime.timedelta(days=1)
        if is_business_day(day):
            found += 1
    return day


def cure_deadline(issued_at: datetime.datetime, business_days: int, at: datetime.time) -> datetime.datetime:
    """The deadline of a margin call issued at ``issued_at``: ``at`` Hong Kong time on the
    ``business_days``-th Hong Kong business day after the day it was issued."""
    local_day = issued_at.astimezone(HONG_KONG).date()
    deadline_day = next_business_day(local_day, business_days)
    return datetime.datetime.combine(deadline_day, at, tzinfo=HONG_KONG)
