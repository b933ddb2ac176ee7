import datetime
from decimal import Decimal

import pytest

from financing.history import ratio_history
from financing.models import RatioSnapshot
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def _snap(facility, minutes, ratio):
    RatioSnapshot.objects.create(
        facility=facility,
        taken_at=START + datetime.timedelta(minutes=minutes),
        market_value=Decimal("100"),
        margin_value=Decimal("50"),
        debt=Decimal("40"),
        margin_ratio=Decimal(ratio),
        status="ok",
    )


def test_the_history_opens_with_the_point_standing_at_its_start_and_keeps_the_last():
    facility = facility_with_pool()
    _snap(facility, -30, "0.5")
    for minute in range(0, 100):
        _snap(facility, minute, f"0.{600 + minute}")
    points = ratio_history(facility.pk, START, START + datetime.timedelta(minutes=100), max_points=11)
    assert points[0].margin_ratio == Decimal("0.5")
    assert points[-1].margin_ratio == Decimal("0.699")
    assert len(points) <= 11
    assert [p.at for p in points] == sorted(p.at for p in points)


def test_a_short_history_is_returned_whole_and_an_empty_period_is_empty():
    facility = facility_with_pool()
    _snap(facility, 1, "0.7")
    _snap(facility, 2, "0.71")
    end = START + datetime.timedelta(hours=1)
    assert [p.margin_ratio for p in ratio_history(facility.pk, START, end)] == [
        Decimal("0.7"),
        Decimal("0.71"),
    ]
    assert ratio_history(facility.pk, end, START) == []
    with pytest.raises(ValueError, match="at least 2"):
        ratio_history(facility.pk, START, end, max_points=1)


def test_a_history_over_every_source_is_thinned_in_the_database_as_python_would():
    """Raw snapshots (probed slice by slice), hourly and daily rollups (thinned in one pass each): the same
    points as reading every row of each source and keeping the last of each slice in Python."""
    from financing.history import FIELDS, HOURLY_KEPT_FROM, RAW_KEPT_FROM, RatioPoint
    from financing.models import RatioRollup, RetentionMark

    facility = facility_with_pool()
    end = START + datetime.timedelta(days=70)
    raw_from, hourly_from = end - datetime.timedelta(days=2), end - datetime.timedelta(days=22)
    RetentionMark.objects.create(name=RAW_KEPT_FROM, at=raw_from)
    RetentionMark.objects.create(name=HOURLY_KEPT_FROM, at=hourly_from)
    for step in range(int((end - raw_from) / datetime.timedelta(minutes=7))):
        _snap(facility, (raw_from - START).total_seconds() / 60 + 7 * step, f"0.{500 + step % 400}")
    for period, every, first, last in (("hour", datetime.timedelta(hours=1), hourly_from, raw_from),
                                       ("day", datetime.timedelta(days=1), START, hourly_from)):  # fmt: skip
        starts = first
        while starts < last:
            RatioRollup.objects.create(
                facility=facility, period=period, starts_at=starts, taken_at=starts + every * 0.9,
                market_value=Decimal("100"), margin_value=Decimal("50"), debt=Decimal("40"),
                margin_ratio=Decimal(f"0.{300 + starts.hour + starts.day}"), status="ok",
                lowest_ratio=Decimal("0.3"), highest_ratio=Decimal("0.4"), snapshots=1,
            )  # fmt: skip
            starts += every
    everything = sorted(
        [
            RatioPoint(*row)
            for row in RatioSnapshot.objects.filter(taken_at__gte=raw_from).values_list(*FIELDS)
        ]
        + [
            RatioPoint(*row)
            for period, low, high in (("hour", hourly_from, raw_from), ("day", None, hourly_from))
            for row in RatioRollup.objects.filter(period=period, taken_at__lt=high)
            .filter(**({"taken_at__gte": low} if low else {}))
            .values_list(*FIELDS)
        ],
        key=lambda p: p.at,
    )
    start = START + datetime.timedelta(days=5, hours=3)
    opening = [p for p in everything if p.at < start][-1:]
    width = (end - start) / (120 - 1 - len(opening))
    slices = {}
    for point in (p for p in everything if start <= p.at <= end):
        slices[int((point.at - start) / width)] = point
    expected = opening + [slices[key] for key in sorted(slices)]
    assert len(everything) > 800
    assert len(expected) <= 120
    assert ratio_history(facility.pk, start, end, max_points=120) == expected
