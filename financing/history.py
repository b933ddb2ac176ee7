"""The margin ratio's history of a facility, for charts and statements: one way in for every reader, so
that where the history is kept (raw snapshots, rollups) can change without changing what a page shows."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from financing.models import RatioSnapshot


@dataclass(frozen=True)
class RatioPoint:
    at: datetime.datetime
    margin_ratio: Decimal | None  # None: debt and no margin value (infinite)
    market_value: Decimal
    margin_value: Decimal
    debt: Decimal
    status: str


def ratio_history(
    facility_id: int,
    start: datetime.datetime,
    end: datetime.datetime,
    max_points: int = 500,
) -> list[RatioPoint]:
    """The facility's ratio from ``start`` to ``end``, oldest first, at most ``max_points`` points: when
    there are more, the last point of each equal slice of the period (what stood at the slice's end), and
    always the very last point. The point standing at ``start`` (the last one before it) opens the series, so
    that a chart begins where the facility stood."""
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if end <= start:
        return []
    rows = RatioSnapshot.objects.filter(facility_id=facility_id)
    fields = ("taken_at", "margin_ratio", "market_value", "margin_value", "debt", "status")
    before = rows.filter(taken_at__lt=start).order_by("-taken_at", "-pk").values_list(*fields)[:1]
    within = (
        rows.filter(taken_at__gte=start, taken_at__lte=end).order_by("taken_at", "pk").values_list(*fields)
    )
    opening = [RatioPoint(*row) for row in before]
    points = [RatioPoint(*row) for row in within]
    if len(opening) + len(points) <= max_points:
        return opening + points
    width = (end - start) / (max_points - 1 - len(opening))
    slices: dict[int, RatioPoint] = {}
    for point in points:
        slices[int((point.at - start) / width)] = point
    thinned = [slices[key] for key in sorted(slices)]
    return opening + thinned
