"""The margin ratio's history of a facility, for charts and statements: one way in for every reader, so
that where the history is kept (raw snapshots, rollups) can change without changing what a page shows.

Raw snapshots are kept for a while, then hourly rollups, then daily ones (``financing.retention``): each
moment is read from the finest source that still covers it — raw snapshots from the moment they are kept
from, hourly rollups before that, daily rollups before those — each rollup standing for the last snapshot of
its period (what stood at its end), as the thinning below keeps the last point of each slice."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from financing.models import RatioRollup, RatioSnapshot, RetentionMark

FIELDS = ("taken_at", "margin_ratio", "market_value", "margin_value", "debt", "status")
RAW_KEPT_FROM = "raw snapshots kept from"  # financing.retention's marks
HOURLY_KEPT_FROM = "hourly rollups kept from"


@dataclass(frozen=True)
class RatioPoint:
    at: datetime.datetime
    margin_ratio: Decimal | None  # None: debt and no margin value (infinite)
    market_value: Decimal
    margin_value: Decimal
    debt: Decimal
    status: str


def _sources(facility_id: int) -> list[tuple]:
    """(rows, from, until) for each source, finest first: the moments each covers, ``None`` open-ended."""
    marks = dict(
        RetentionMark.objects.filter(name__in=[RAW_KEPT_FROM, HOURLY_KEPT_FROM]).values_list("name", "at")
    )
    raw_from = marks.get(RAW_KEPT_FROM)
    hourly_from = marks.get(HOURLY_KEPT_FROM)
    if raw_from is not None and hourly_from is not None:
        hourly_from = min(hourly_from, raw_from)
    rollups = RatioRollup.objects.filter(facility_id=facility_id)
    sources = [(RatioSnapshot.objects.filter(facility_id=facility_id), raw_from, None)]
    if raw_from is not None:
        sources.append((rollups.filter(period=RatioRollup.Period.HOUR), hourly_from, raw_from))
        if hourly_from is not None:
            sources.append((rollups.filter(period=RatioRollup.Period.DAY), None, hourly_from))
    return sources


def _within(rows, start: datetime.datetime | None, end: datetime.datetime | None, *, end_open: bool = True):
    if start is not None:
        rows = rows.filter(taken_at__gte=start)
    if end is not None:
        rows = rows.filter(taken_at__lt=end) if end_open else rows.filter(taken_at__lte=end)
    return rows


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
    sources = _sources(facility_id)
    opening: list[RatioPoint] = []
    for rows, covers_from, covers_until in sources:
        before = _within(rows, covers_from, min(start, covers_until) if covers_until else start)
        last = before.order_by("-taken_at", "-pk").values_list(*FIELDS)[:1]
        opening = max([*opening, *(RatioPoint(*row) for row in last)], key=lambda p: p.at, default=None)
        opening = [opening] if opening else []
    ranges = []
    for rows, covers_from, covers_until in sources:
        if covers_until is not None and covers_until <= start:
            continue
        low = max(start, covers_from) if covers_from else start
        if covers_until is not None and covers_until <= end:
            ranges.append(_within(rows, low, covers_until))
        else:
            ranges.append(_within(rows, low, end, end_open=False))
    room = max_points - len(opening)
    if sum(within.order_by().values_list("pk")[: room + 1].count() for within in ranges) <= room:
        points = [
            RatioPoint(*row)
            for within in ranges
            for row in within.order_by("taken_at", "pk").values_list(*FIELDS)
        ]
        points.sort(key=lambda p: p.at)
        return opening + points
    width = (end - start) / (max_points - 1 - len(opening))
    last_slice = int((end - start) / width)
    points = [point for within in ranges for point in _last_of_each_slice(within, start, width, last_slice)]
    points.sort(key=lambda p: p.at)
    slices: dict[int, RatioPoint] = {}
    for point in points:
        slices[int((point.at - start) / width)] = point
    thinned = [slices[key] for key in sorted(slices)]
    return opening + thinned


def _last_of_each_slice(
    within, start: datetime.datetime, width: datetime.timedelta, slices: int
) -> list[RatioPoint]:
    """The last row of each slice ``0 … slices`` of ``width`` from ``start``: all of them read when there are
    few, otherwise chosen in the database by one probe of the (facility, time) index per slice (the newest row
    before the slice's end), so that a year of snapshots is never read into Python. The same slices as the
    thinning in ``ratio_history``, so thinning again there changes nothing."""
    few = (slices + 1) * 4
    rows = within.order_by().values_list("pk")
    if rows[: few + 1].count() <= few:
        return [RatioPoint(*row) for row in within.order_by("taken_at", "pk").values_list(*FIELDS)]
    sql, params = within.order_by().values_list(*FIELDS, "pk").query.sql_with_params()
    columns = ", ".join(f"q.{field}" for field in FIELDS)
    bounds = [start + width * index for index in range(slices + 2)]
    query = (
        f"SELECT r.* FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS b(low, high) CROSS JOIN LATERAL "
        f"(SELECT {columns} FROM ({sql}) AS q WHERE q.taken_at >= b.low AND q.taken_at < b.high "
        "ORDER BY q.taken_at DESC, q.pk DESC LIMIT 1) AS r ORDER BY r.taken_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [bounds[:-1], bounds[1:], *params])
        return [RatioPoint(*row) for row in cursor.fetchall()]
