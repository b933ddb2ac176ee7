"""The watchdog of the margin sweep: staff are alerted once when the last full sweep finished longer ago than
its schedule allows (stopped, disabled, or beat or the workers down), and told once when it runs again. Run
by its own periodic task and, in case beat itself is down, whenever staff open the admin."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from financing.enums import SweepScope
from financing.models import SweepRun
from financing.monitoring.schedules import interval_seconds
from notifications.models import Event
from notifications.services import EventSpec, events_record

SWEEP_TASK = "financing.margin_sweep"
OVERDUE = "monitoring.sweep_overdue"
RESUMED = "monitoring.sweep_resumed"


@dataclass(frozen=True)
class SweepHealth:
    """How late the full sweep is: ``overdue`` once nothing has finished for longer than ``allowed``."""

    last_finished_at: datetime.datetime | None
    interval: datetime.timedelta
    allowed: datetime.timedelta
    overdue: bool
    late_by: datetime.timedelta | None

    def in_words(self) -> str:
        last = (
            timezone.localtime(self.last_finished_at).strftime("%Y-%m-%d %H:%M:%S")
            if self.last_finished_at
            else "never"
        )
        minutes = int(self.late_by.total_seconds() // 60) if self.late_by else 0
        return (
            f"The margin sweep has not finished for {minutes} minutes (last finished {last}; its schedule allows "
            f"{int(self.allowed.total_seconds())} seconds): no margin call or forced sale is being triggered."
        )


def sweep_interval() -> datetime.timedelta:
    """How often the full sweep should run: its shortest enabled schedule, or the expected interval when none
    is enabled (a disabled sweep is overdue as any stopped one is)."""
    seconds = [
        interval_seconds(task.interval)
        for task in PeriodicTask.objects.filter(
            task=SWEEP_TASK, enabled=True, interval__isnull=False
        ).select_related("interval")
    ]
    return datetime.timedelta(seconds=min(seconds) if seconds else settings.SWEEP_EXPECTED_INTERVAL_SECONDS)


def sweep_health(now: datetime.datetime | None = None) -> SweepHealth:
    now = now or timezone.now()
    interval = sweep_interval()
    allowed = interval * settings.SWEEP_OVERDUE_AFTER_INTERVALS
    full = SweepRun.objects.filter(scope=SweepScope.ALL)
    last = (
        full.filter(finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    # With no full sweep finished ever, the first one begun is the reference; with none begun, nothing is late.
    since = last or full.order_by("started_at").values_list("started_at", flat=True).first()
    late_by = now - since if since is not None else None
    return SweepHealth(last, interval, allowed, late_by is not None and late_by > allowed, late_by)


def _last_event(event_type: str) -> Event | None:
    return Event.objects.filter(type=event_type).order_by("-occurred_at").first()


def sweep_overdue_check(*, now: datetime.datetime | None = None) -> SweepHealth:
    """Alert staff (an event, e-mailed through the outbox) the first time the sweep is found overdue in a
    spell, and once when it has finished again after that; otherwise record nothing. Safe to run from many
    places at once: the check holds a transaction-scoped lock."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('financing.sweep_watchdog'))")
        health = sweep_health(now)
        alerted = _last_event(OVERDUE)
        if health.overdue:
            reference = health.last_finished_at
            if alerted is None or (reference is not None and alerted.occurred_at <= reference):
                events_record([_spec(OVERDUE, health.in_words(), health)])
        elif (
            alerted is not None and health.last_finished_at and health.last_finished_at > alerted.occurred_at
        ):
            resumed = _last_event(RESUMED)
            if resumed is None or resumed.occurred_at < alerted.occurred_at:
                events_record([_spec(RESUMED, "The margin sweep is running again.", health)])
    return health


def _spec(event_type: str, summary: str, health: SweepHealth) -> EventSpec:
    return EventSpec(
        type=event_type,
        summary=summary,
        payload={
            "last_finished_at": health.last_finished_at,
            "interval_seconds": int(health.interval.total_seconds()),
            "allowed_seconds": int(health.allowed.total_seconds()),
            "late_by_seconds": int(health.late_by.total_seconds()) if health.late_by else None,
        },
        notify_client=False,
    )
