"""Hong Kong business days: the trading days of the Hong Kong exchange (``exchange_calendars``' XHKG),
read once per process on first use. The rules and their limits: docs/calendar.md."""

from __future__ import annotations

import bisect
import datetime
import threading
import warnings
from zoneinfo import ZoneInfo

HONG_KONG = ZoneInfo("Asia/Hong_Kong")

# The days the calendar answers for. From 2000, long before the platform's first facility, so any past day a
# record can carry is answered; to the end of 2049, the last year exchange_calendars records Hong Kong's
# lunisolar holidays for, so a facility opened today and renewed for decades gets every deadline from the same
# rules. A day outside raises OutsideCalendar: a guess about an unrecorded year could set a deadline on a
# holiday, which is the very fault this calendar exists to prevent.
FIRST_DAY = datetime.date(2000, 1, 1)
LAST_DAY = datetime.date(2049, 12, 31)


class OutsideCalendar(ValueError):
    """A day, or the business day asked for, lies outside FIRST_DAY..LAST_DAY."""


_sessions: tuple[datetime.date, ...] | None = None
_session_set: frozenset[datetime.date] = frozenset()
_lock = threading.Lock()


def _load() -> tuple[tuple[datetime.date, ...], frozenset[datetime.date]]:
    """The XHKG sessions, sorted, and the same as a set: built on first use, under a lock, once per process."""
    global _sessions, _session_set
    if _sessions is None:
        with _lock:
            if _sessions is None:
                # Imported here, not at the top: exchange_calendars brings pandas, which Django's start-up and
                # the Celery worker need not load before the first deadline is asked for.
                import exchange_calendars

                # Quiet its calls of pandas APIs that pandas 4 drops (pyproject caps pandas below 4).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    calendar = exchange_calendars.get_calendar("XHKG", start=FIRST_DAY, end=LAST_DAY)
                sessions = tuple(calendar.sessions.date)
                _session_set = frozenset(sessions)
                _sessions = sessions
    return _sessions, _session_set


def _check(day: datetime.date) -> None:
    if isinstance(day, datetime.datetime):
        raise TypeError("a business day is a date: give the Hong Kong date, not a datetime")
    if not FIRST_DAY <= day <= LAST_DAY:
        raise OutsideCalendar(
            f"{day} is outside the Hong Kong business-day calendar, {FIRST_DAY} to {LAST_DAY}"
        )


def is_business_day(day: datetime.date) -> bool:
    """Whether ``day`` is a trading day of the Hong Kong exchange (half days included)."""
    _check(day)
    return day in _load()[1]


def next_business_day(day: datetime.date, count: int = 1) -> datetime.date:
    """The ``count``-th business day after ``day`` (``day`` itself never counts)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    _check(day)
    sessions = _load()[0]
    index = bisect.bisect_right(sessions, day) + count - 1
    if index >= len(sessions):
        raise OutsideCalendar(f"the business day {count} after {day} is past the calendar's end ({LAST_DAY})")
    return sessions[index]


def cure_deadline(issued_at: datetime.datetime, business_days: int, at: datetime.time) -> datetime.datetime:
    """The deadline of a margin call issued at ``issued_at``: ``at`` Hong Kong time on the
    ``business_days``-th Hong Kong business day after the day it was issued."""
    local_day = issued_at.astimezone(HONG_KONG).date()
    deadline_day = next_business_day(local_day, business_days)
    return datetime.datetime.combine(deadline_day, at, tzinfo=HONG_KONG)
