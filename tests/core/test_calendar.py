"""Hong Kong business days are the Hong Kong exchange's trading days, checked day by day against HKEX's own
published holiday lists, written out here by hand (never taken from exchange_calendars)."""

import datetime
import os
import subprocess
import sys
import threading

import pytest

from core import calendar
from core.calendar import HONG_KONG, OutsideCalendar, cure_deadline, is_business_day, next_business_day

D = datetime.date
NOON = datetime.time(12, 0)

# Weekdays on which the HKEX securities market is closed, as HKEX published them (the Government's gazetted
# general holidays that fall on a weekday; Saturdays and Sundays are never trading days).
HKEX_CLOSED_WEEKDAYS = {
    2025: {
        D(2025, 1, 1),  # The first day of January
        D(2025, 1, 29),  # Lunar New Year's Day
        D(2025, 1, 30),  # The second day of Lunar New Year
        D(2025, 1, 31),  # The third day of Lunar New Year
        D(2025, 4, 4),  # Ching Ming Festival
        D(2025, 4, 18),  # Good Friday
        D(2025, 4, 21),  # Easter Monday
        D(2025, 5, 1),  # Labour Day
        D(2025, 5, 5),  # The Birthday of the Buddha
        D(2025, 7, 1),  # Hong Kong Special Administrative Region Establishment Day
        D(2025, 10, 1),  # National Day
        D(2025, 10, 7),  # The day following the Chinese Mid-Autumn Festival
        D(2025, 10, 29),  # Chung Yeung Festival
        D(2025, 12, 25),  # Christmas Day
        D(2025, 12, 26),  # The first weekday after Christmas Day
        # Tuen Ng Festival (31 May) fell on a Saturday.
    },
    2026: {
        D(2026, 1, 1),  # The first day of January
        D(2026, 2, 17),  # Lunar New Year's Day
        D(2026, 2, 18),  # The second day of Lunar New Year
        D(2026, 2, 19),  # The third day of Lunar New Year
        D(2026, 4, 3),  # Good Friday
        D(2026, 4, 6),  # The day following Ching Ming Festival (5 April, a Sunday)
        D(2026, 4, 7),  # The day following Easter Monday
        D(2026, 5, 1),  # Labour Day
        D(2026, 5, 25),  # The day following the Birthday of the Buddha (24 May, a Sunday)
        D(2026, 6, 19),  # Tuen Ng Festival
        D(2026, 7, 1),  # Hong Kong Special Administrative Region Establishment Day
        D(2026, 10, 1),  # National Day
        D(2026, 10, 19),  # The day following Chung Yeung Festival (18 October, a Sunday)
        D(2026, 12, 25),  # Christmas Day
        # The day following Good Friday (4 April), the day following the Mid-Autumn Festival (26 September)
        # and the first weekday after Christmas Day (26 December) fall on Saturdays.
    },
}

# HKEX's half days (Lunar New Year's Eve, Christmas Eve, New Year's Eve): a morning session only.
HKEX_HALF_DAYS = {
    2025: {D(2025, 1, 28), D(2025, 12, 24), D(2025, 12, 31)},
    2026: {D(2026, 2, 16), D(2026, 12, 24), D(2026, 12, 31)},
}


def every_day(year):
    day = D(year, 1, 1)
    while day.year == year:
        yield day
        day += datetime.timedelta(days=1)


@pytest.mark.parametrize("year", sorted(HKEX_CLOSED_WEEKDAYS))
def test_every_day_of_a_published_year_is_a_business_day_exactly_when_hkex_trades(year):
    closed = HKEX_CLOSED_WEEKDAYS[year]
    assert all(day.weekday() < 5 for day in closed)  # the list itself: weekdays only, of that year
    assert all(day.year == year for day in closed)

    wrong = [
        day for day in every_day(year) if is_business_day(day) != (day.weekday() < 5 and day not in closed)
    ]

    assert wrong == []
    assert sum(is_business_day(day) for day in every_day(year)) == {2025: 246, 2026: 247}[year]


@pytest.mark.parametrize("year", sorted(HKEX_HALF_DAYS))
def test_half_days_are_business_days(year):
    assert all(is_business_day(day) for day in HKEX_HALF_DAYS[year])


def hong_kong(*args):
    return datetime.datetime(*args, tzinfo=HONG_KONG)


def test_a_call_issued_on_the_eve_of_good_friday_is_due_on_the_next_hkex_trading_day():
    """The bug this calendar fixes: the ``holidays`` library's default Hong Kong categories leave out the
    general holidays that are not (yet) statutory ones, such as Good Friday and Easter Monday, so a call issued
    on the Thursday before Easter was given a deadline of 12:00 on Good Friday, when HKEX and the banks are
    closed."""
    # Thursday 2 April 2026; then Good Friday, a weekend, the day following Ching Ming, the day following Easter
    # Monday: the next trading day is Wednesday 8 April.
    assert cure_deadline(hong_kong(2026, 4, 2, 15, 30), 1, NOON) == hong_kong(2026, 4, 8, 12, 0)
    # 2025: Good Friday 18 April and Easter Monday 21 April were both missed.
    assert cure_deadline(hong_kong(2025, 4, 17, 10, 0), 1, NOON) == hong_kong(2025, 4, 22, 12, 0)
    assert cure_deadline(hong_kong(2025, 4, 17, 10, 0), 2, NOON) == hong_kong(2025, 4, 23, 12, 0)


def test_the_issue_day_is_the_hong_kong_day_of_the_moment_issued():
    # 17:30 UTC on Thursday 2 April 2026 is 01:30 on Good Friday in Hong Kong: the call counts from Friday.
    issued_at = datetime.datetime(2026, 4, 2, 17, 30, tzinfo=datetime.UTC)
    assert cure_deadline(issued_at, 1, NOON) == hong_kong(2026, 4, 8, 12, 0)
    # 15:59 UTC on Monday 30 March 2026 is 23:59 the same day in Hong Kong: due on Tuesday.
    issued_at = datetime.datetime(2026, 3, 30, 15, 59, tzinfo=datetime.UTC)
    assert cure_deadline(issued_at, 1, NOON) == hong_kong(2026, 3, 31, 12, 0)


def test_a_deadline_on_a_half_day_keeps_the_policys_cure_time_even_after_the_close():
    # Christmas Eve 2026 is a trading day with a morning session only (closing at 12:00): a 16:00 cure time
    # still lands on it, four hours after the market closed (docs/calendar.md says so).
    four_pm = datetime.time(16, 0)
    assert cure_deadline(hong_kong(2026, 12, 23, 9, 0), 1, four_pm) == hong_kong(2026, 12, 24, 16, 0)
    # From Christmas Eve, the next trading day is Monday 28 December (25 is Christmas Day, 26 a Saturday).
    assert cure_deadline(hong_kong(2026, 12, 24, 9, 0), 1, NOON) == hong_kong(2026, 12, 28, 12, 0)


def test_next_business_day_counts_only_days_after_the_given_one():
    assert next_business_day(D(2026, 2, 13)) == D(2026, 2, 16)  # Friday → Monday (Lunar New Year's Eve)
    assert next_business_day(D(2026, 2, 16)) == D(2026, 2, 20)  # past the three days of Lunar New Year
    assert next_business_day(D(2026, 2, 14), 3) == D(2026, 2, 23)  # from a Saturday: 16, 20, 23
    with pytest.raises(ValueError, match="at least 1"):
        next_business_day(D(2026, 2, 16), 0)


def test_a_day_outside_the_calendar_is_refused_with_a_clear_error():
    assert is_business_day(calendar.FIRST_DAY) is False  # 1 January 2000, a Saturday and a holiday
    assert next_business_day(D(2049, 12, 30)) == calendar.LAST_DAY  # Friday 31 December 2049
    for day in (D(1999, 12, 31), D(2050, 1, 3)):
        with pytest.raises(OutsideCalendar, match="outside the Hong Kong business-day calendar"):
            is_business_day(day)
        with pytest.raises(OutsideCalendar):
            next_business_day(day)
    with pytest.raises(OutsideCalendar, match="past the calendar's end"):
        next_business_day(D(2049, 12, 30), 2)
    with pytest.raises(OutsideCalendar):
        cure_deadline(hong_kong(2049, 12, 31, 9, 0), 1, NOON)


def test_a_datetime_is_refused_rather_than_silently_read_as_not_a_business_day():
    with pytest.raises(TypeError, match="not a datetime"):
        is_business_day(hong_kong(2026, 4, 8, 9, 0))


def test_the_calendar_is_built_once_per_process_however_many_threads_ask(monkeypatch):
    import exchange_calendars

    built = []
    real_get_calendar = exchange_calendars.get_calendar

    def counting_get_calendar(*args, **kwargs):
        built.append(args)
        return real_get_calendar(*args, **kwargs)

    monkeypatch.setattr(calendar, "_sessions", None)  # as in a fresh process
    monkeypatch.setattr(exchange_calendars, "get_calendar", counting_get_calendar)
    start = threading.Barrier(8)
    answers = []

    def ask():
        start.wait()
        answers.append(is_business_day(D(2026, 4, 3)))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(1000):
        next_business_day(D(2026, 4, 2))

    assert answers == [False] * 8
    assert built == [("XHKG",)]


def test_django_and_celery_start_without_loading_the_exchange_calendar():
    """The calendar brings pandas: the web and worker processes load it on the first deadline, not at start."""
    code = (
        "import sys, django; django.setup();"
        "import config.celery, financing.tasks, financing.margin_calls.batch, financing.monitoring.ladder, core.calendar;"
        "from django.urls import get_resolver; get_resolver().url_patterns;"
        "print(sorted({'exchange_calendars', 'pandas'} & set(sys.modules)))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
