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
    for rows, covers_from, covers_until in sources:  # finest (latest) first: the first point found stands
        if covers_from is not None and covers_from >= start:
            continue  # this source covers nothing before the start
        before = _within(rows, covers_from, min(start, covers_until) if covers_until else start)
        opening = [RatioPoint(*row) for row in before.order_by("-taken_at", "-pk").values_list(*FIELDS)[:1]]
        if opening:
            break
    ranges = []
    for rows, covers_from, covers_until in sources:
        if covers_until is not None and covers_until <= start:
            continue
        low = max(start, covers_from) if covers_from else start
        if low > end:
            continue
        if covers_until is not None and covers_until <= end:
            ranges.append((_within(rows, low, covers_until), low, covers_until))
        else:
            ranges.append((_within(rows, low, end, end_open=False), low, end))
    room = max_points - len(opening)
    if _count_up_to([within for within, _low, _high in ranges], room + 1) <= room:
        points = [
            RatioPoint(*row)
            for within, _low, _high in ranges
            for row in within.order_by("taken_at", "pk").values_list(*FIELDS)
        ]
        points.sort(key=lambda p: p.at)
        return opening + points
    width = (end - start) / (max_points - 1 - len(opening))
    last_slice = int((end - start) / width)
    points = [
        point
        for within, low, high in ranges
        for point in _last_of_each_slice(
            within, start, width, int((low - start) / width), min(int((high - start) / width), last_slice)
        )
    ]
    points.sort(key=lambda p: p.at)
    slices: dict[int, RatioPoint] = {}
    for point in points:
        slices[int((point.at - start) / width)] = point
    thinned = [slices[key] for key in sorted(slices)]
    return opening + thinned


def _count_up_to(querysets: list, limit: int) -> int:
    """How many rows the querysets hold together, counting no further than ``limit`` in each: one query."""
    if not querysets:
        return 0
    limited = [rows.order_by().values_list("pk")[:limit] for rows in querysets]
    if len(limited) == 1:
        return limited[0].count()
    return limited[0].union(*limited[1:], all=True).count()


def _last_of_each_slice(
    within, start: datetime.datetime, width: datetime.timedelta, first: int, last: int
) -> list[RatioPoint]:
    """The last row of each slice ``first … last`` of ``width`` from ``start`` (those the source covers),
    chosen in the database so that a year of snapshots is never read into Python: raw snapshots by one probe
    of their (facility, time) index per slice (the newest row before the slice's end); rollups, a few
    thousand rows at most and not indexed by their time, by one pass that keeps the newest of each slice.
    The slices' bounds are made in the database from ``start`` and ``width`` in whole microseconds (as
    Python's), not sent as a thousand parameters. The same slices as the thinning in ``ratio_history``, so
    thinning again there changes nothing."""
    sql, params = within.order_by().values_list(*FIELDS, "pk").query.sql_with_params()
    columns = ", ".join(f"q.{field}" for field in FIELDS)
    step = width // datetime.timedelta(microseconds=1)
    if within.model is RatioSnapshot:
        query = (
            "SELECT r.* FROM (SELECT %s::timestamptz + (i * %s::bigint) * interval '1 microsecond' AS low, "
            "%s::timestamptz + ((i + 1) * %s::bigint) * interval '1 microsecond' AS high "
            "FROM generate_series(%s::integer, %s::integer) AS i) AS b CROSS JOIN LATERAL "
            f"(SELECT {columns} FROM ({sql}) AS q WHERE q.taken_at >= b.low AND q.taken_at < b.high "
            "ORDER BY q.taken_at DESC, q.pk DESC LIMIT 1) AS r ORDER BY r.taken_at"
        )
        arguments = [start, step, start, step, first, last, *params]
    else:
        query = (
            f"SELECT {', '.join(FIELDS)} FROM (SELECT DISTINCT ON (slice) {columns}, "
            "div((extract(epoch FROM q.taken_at - %s::timestamptz) * 1000000)::numeric, %s::bigint) AS slice "
            f"FROM ({sql}) AS q ORDER BY slice, q.taken_at DESC, q.pk DESC) AS r ORDER BY taken_at"
        )
        arguments = [start, step, *params]
    with connection.cursor() as cursor:
        cursor.execute(query, arguments)
        return [RatioPoint(*row) for row in cursor.fetchall()]
