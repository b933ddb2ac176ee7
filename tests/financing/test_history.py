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
