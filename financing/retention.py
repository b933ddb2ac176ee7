"""What is kept of the history, and for how long (docs/operations.md, "What is kept"): ratio snapshots raw for
``RETENTION_RAW_SNAPSHOT_DAYS``, rolled up by hour (kept ``RETENTION_HOURLY_ROLLUP_DAYS``) and by day (kept
``RETENTION_DAILY_ROLLUP_DAYS``, 0: for ever); venue price quotes for ``RETENTION_PRICE_QUOTE_DAYS``, except
those of a price a forced sale was planned on. One run rolls up what is complete, then drops what is past its
retention and already rolled up, so that ``financing.history.ratio_history`` always has a source for every
moment. Every deletion is by these settings, and ``retention_run(dry_run=True)`` says what a run would do."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Value
from django.db.models.functions import Trunc
from django.utils import timezone

from collateral.models import PriceQuote
from financing.history import HOURLY_KEPT_FROM, RAW_KEPT_FROM
from financing.models import ForcedSale, RatioRollup, RatioSnapshot, RetentionMark

logger = logging.getLogger(__name__)

UTC = datetime.UTC
# An hour is rolled up this long after it ends: a sweep that began in it may still be committing its snapshots.
ROLLUP_LAG = datetime.timedelta(minutes=5)
# Hours rolled up per statement when catching up.
ROLLUP_CHUNK = datetime.timedelta(hours=6)

HOURLY_ROLLED_TO = "hourly rolled up to"
DAILY_ROLLED_TO = "daily rolled up to"

FIELDS = ["facility_id", "taken_at", "market_value", "margin_value", "debt", "margin_ratio", "status"]


@dataclass(frozen=True)
class RetentionStep:
    action: str  # "roll up", "drop partition", "create partition", "delete"
    what: str
    rows: int

    def __str__(self) -> str:
        return f"{self.action}: {self.what} ({self.rows:,} rows)"


def _floor_hour(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _floor_day(moment: datetime.datetime) -> datetime.datetime:
    return _floor_hour(moment).replace(hour=0)


def retention_marks() -> dict[str, datetime.datetime]:
    return dict(RetentionMark.objects.values_list("name", "at"))


def _mark(name: str, at: datetime.datetime) -> None:
    RetentionMark.objects.update_or_create(name=name, defaults={"at": at})


def _rollup_rows(rows, period: str, bucket_of) -> list[RatioRollup]:
    """``rows``: (facility, moment, market value, margin value, debt, ratio, status, lowest, highest, count), in
    order of facility and moment. One rollup per facility and period (``bucket_of(moment)``): the last row's
    figures, the lowest ratio, the highest (none when any was infinite) and the count. Streamed: a period of a
    whole book is hundreds of thousands of rows."""
    rollups: dict[tuple, RatioRollup] = {}
    for facility_id, moment, market_value, margin_value, debt, ratio, status, low, high, count in rows:
        key = (facility_id, bucket_of(moment))
        rollup = rollups.get(key)
        if rollup is None:
            rollup = rollups[key] = RatioRollup(
                facility_id=facility_id, period=period, starts_at=key[1], lowest_ratio=low, highest_ratio=high,
                snapshots=0,
            )  # fmt: skip
        elif rollup.highest_ratio is not None:
            rollup.highest_ratio = None if high is None else max(rollup.highest_ratio, high)
        if low is not None and (rollup.lowest_ratio is None or low < rollup.lowest_ratio):
            rollup.lowest_ratio = low
        rollup.taken_at, rollup.market_value, rollup.margin_value, rollup.debt = (
            moment,
            market_value,
            margin_value,
            debt,
        )
        rollup.margin_ratio, rollup.status = ratio, status
        rollup.snapshots += count
    return list(rollups.values())


def _store(rollups: list[RatioRollup]) -> None:
    RatioRollup.objects.bulk_create(
        rollups,
        batch_size=5000,
        update_conflicts=True,
        unique_fields=["facility", "period", "starts_at"],
        update_fields=[
            "taken_at", "market_value", "margin_value", "debt", "margin_ratio", "status", "lowest_ratio",
            "highest_ratio", "snapshots",
        ],
    )  # fmt: skip


def _roll_up_hours(start: datetime.datetime, end: datetime.datetime, dry_run: bool) -> RetentionStep:
    rolled = 0
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + ROLLUP_CHUNK, end)
        rows = RatioSnapshot.objects.filter(taken_at__gte=chunk_start, taken_at__lt=chunk_end)
        if dry_run:
            rolled += (
                rows.annotate(bucket=Trunc("taken_at", "hour", tzinfo=UTC))
                .values("facility_id", "bucket")
                .distinct()
                .count()
            )
        else:
            values = rows.order_by("facility_id", "taken_at", "pk").values_list(
                *FIELDS, "margin_ratio", "margin_ratio", Value(1)
            )
            rollups = _rollup_rows(values.iterator(chunk_size=20000), RatioRollup.Period.HOUR, _floor_hour)
            _store(rollups)
            rolled += len(rollups)
        chunk_start = chunk_end
    return RetentionStep("roll up", f"hours from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC", rolled)


def _roll_up_days(start: datetime.datetime, end: datetime.datetime, dry_run: bool) -> RetentionStep:
    rolled = 0
    day = start
    while day < end:
        rows = RatioRollup.objects.filter(
            period=RatioRollup.Period.HOUR, starts_at__gte=day, starts_at__lt=day + datetime.timedelta(days=1)
        )
        if dry_run:
            rolled += rows.values("facility_id").distinct().count()
        else:
            values = rows.order_by("facility_id", "taken_at").values_list(
                *FIELDS, "lowest_ratio", "highest_ratio", "snapshots"
            )
            rollups = _rollup_rows(values.iterator(chunk_size=20000), RatioRollup.Period.DAY, _floor_day)
            _store(rollups)
            rolled += len(rollups)
        day += datetime.timedelta(days=1)
    return RetentionStep("roll up", f"days from {start:%Y-%m-%d} to {end:%Y-%m-%d} UTC", rolled)


def _first(moment: datetime.datetime | None, floor) -> datetime.datetime | None:
    return floor(moment) if moment is not None else None


def _drop_raw_snapshots(before: datetime.datetime, dry_run: bool) -> list[RetentionStep]:
    """On PostgreSQL, the daily partitions that end by ``before`` are dropped (and the coming days' created);
    elsewhere the rows are deleted."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT action, partition_name, row_count FROM financing_ratiosnapshot_partitions_keep(%s, %s, %s)",
                [settings.RETENTION_PARTITIONS_AHEAD_DAYS, before, dry_run],
            )
            return [
                RetentionStep(f"{action} partition", name, rows) for action, name, rows in cursor.fetchall()
            ]
    old = RatioSnapshot.objects.filter(taken_at__lt=before)
    rows = old.count() if dry_run else old.delete()[0]
    return [RetentionStep("delete", f"ratio snapshots before {before:%Y-%m-%d %H:%M} UTC", rows)]


def _delete(queryset, what: str, dry_run: bool) -> RetentionStep:
    rows = queryset.count() if dry_run else queryset.delete()[0]
    return RetentionStep("delete", what, rows)


def price_quotes_past_retention(now: datetime.datetime):
    """Quotes older than ``RETENTION_PRICE_QUOTE_DAYS``, but not those that fed a price a forced sale was planned
    on: the sale's explanation (its plan and the quotes behind each price) stays whole."""
    before = now - datetime.timedelta(days=settings.RETENTION_PRICE_QUOTE_DAYS)
    planned_on = ForcedSale.planned_on_prices.through.objects.values("price_id")
    return PriceQuote.objects.filter(received_at__lt=before).exclude(
        Q(chosen_price__isnull=False) & Q(chosen_price_id__in=planned_on)
    )


def retention_run(*, dry_run: bool = False, now: datetime.datetime | None = None) -> list[RetentionStep]:
    """Roll up the complete hours and days not rolled up yet, then drop raw snapshots past their retention (only
    what is rolled up), hourly rollups past theirs (only what is rolled up by day), daily rollups past theirs
    (when set), and price quotes past theirs; create the coming days' snapshot partitions. With ``dry_run``,
    write nothing and say what would be done. Returns the steps, each with its rows."""
    now = now or timezone.now()
    marks = retention_marks()
    steps = []
    hours_end = _floor_hour(now - ROLLUP_LAG)
    hours_start = marks.get(HOURLY_ROLLED_TO) or _first(
        RatioSnapshot.objects.order_by("taken_at").values_list("taken_at", flat=True).first(), _floor_hour
    )
    with transaction.atomic():
        if hours_start is not None and hours_start < hours_end:
            steps.append(_roll_up_hours(hours_start, hours_end, dry_run))
            if not dry_run:
                _mark(HOURLY_ROLLED_TO, hours_end)
        days_end = _floor_day(hours_end)
        days_start = marks.get(DAILY_ROLLED_TO) or _first(
            RatioRollup.objects.filter(period=RatioRollup.Period.HOUR)
            .order_by("starts_at")
            .values_list("starts_at", flat=True)
            .first(),
            _floor_day,
        )
        if dry_run and days_start is None and hours_start is not None:
            days_start = _floor_day(hours_start)  # what the hours rolled up would start from
        if days_start is not None and days_start < days_end:
            steps.append(_roll_up_days(days_start, days_end, dry_run))
            if not dry_run:
                _mark(DAILY_ROLLED_TO, days_end)
        if dry_run:
            transaction.set_rollback(True)
    # The deletions in a transaction of their own, once the rollups are committed: dropping a partition locks
    # the table until commit (a sweep's insert waits for it), for a moment rather than for the rollups.
    with transaction.atomic():
        raw_before = min(
            _floor_day(now - datetime.timedelta(days=settings.RETENTION_RAW_SNAPSHOT_DAYS)), days_end
        )
        steps += _drop_raw_snapshots(raw_before, dry_run)
        if not dry_run:
            _mark(RAW_KEPT_FROM, max(raw_before, marks.get(RAW_KEPT_FROM, raw_before)))

        hourly_before = min(
            _floor_day(now - datetime.timedelta(days=settings.RETENTION_HOURLY_ROLLUP_DAYS)),
            days_end,
            raw_before,
        )
        hourly = RatioRollup.objects.filter(period=RatioRollup.Period.HOUR, starts_at__lt=hourly_before)
        steps.append(_delete(hourly, f"hourly rollups before {hourly_before:%Y-%m-%d} UTC", dry_run))
        if not dry_run:
            _mark(HOURLY_KEPT_FROM, max(hourly_before, marks.get(HOURLY_KEPT_FROM, hourly_before)))
        if settings.RETENTION_DAILY_ROLLUP_DAYS:
            daily_before = _floor_day(now - datetime.timedelta(days=settings.RETENTION_DAILY_ROLLUP_DAYS))
            daily = RatioRollup.objects.filter(period=RatioRollup.Period.DAY, starts_at__lt=daily_before)
            steps.append(_delete(daily, f"daily rollups before {daily_before:%Y-%m-%d} UTC", dry_run))

        steps.append(
            _delete(
                price_quotes_past_retention(now),
                f"price quotes older than {settings.RETENTION_PRICE_QUOTE_DAYS} days (but those of a price a "
                "forced sale was planned on)",
                dry_run,
            )
        )
        if dry_run:
            transaction.set_rollback(True)
    for step in steps:
        logger.info("retention%s: %s", " (dry run)" if dry_run else "", step)
    return steps
