"""The watchdog of the margin sweep: staff alerted once per spell when the last full sweep is older than its
schedule allows, told once when it runs again; from its own periodic task and from the admin's first page."""

import datetime

import pytest
import time_machine
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from financing.enums import SweepScope
from financing.models import SweepRun
from financing.monitoring.watchdog import OVERDUE, RESUMED, sweep_overdue_check
from financing.tasks import sweep_watchdog
from notifications.enums import Channel
from notifications.models import Event, OutboxMessage
from tests.accounts.factories import StaffFactory
from tests.helpers import login_as

pytestmark = pytest.mark.django_db

T = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)


def minutes(n: float) -> datetime.datetime:
    return T + datetime.timedelta(minutes=n)


def sweep_finished(at: datetime.datetime, scope: str = SweepScope.ALL) -> SweepRun:
    return SweepRun.objects.create(
        trigger="scheduled", scope=scope, started_at=at - datetime.timedelta(seconds=2), finished_at=at
    )


def alerts(event_type: str = OVERDUE) -> list[Event]:
    return list(Event.objects.filter(type=event_type).order_by("occurred_at"))


@pytest.fixture(autouse=True)
def _staff_addresses(settings):
    settings.STAFF_ALERT_EMAILS = ["risk-desk@broker.example"]
    settings.SWEEP_OVERDUE_AFTER_INTERVALS = 3


def test_staff_are_alerted_once_per_spell_and_told_when_it_runs_again():
    sweep_finished(T)
    assert not sweep_overdue_check(now=minutes(2.9)).overdue  # the schedule runs it every minute: 3 allowed
    with time_machine.travel(minutes(3.5), tick=False):
        health = sweep_overdue_check()
    assert health.overdue
    [alert] = alerts()
    assert "has not finished for 3 minutes" in alert.summary
    assert alert.payload["allowed_seconds"] == 180
    assert OutboxMessage.objects.filter(
        event=alert, channel=Channel.EMAIL, recipient="risk-desk@broker.example"
    ).exists()
    with time_machine.travel(minutes(10), tick=False):
        assert sweep_overdue_check().overdue
    assert len(alerts()) == 1  # still the same spell: no second alert
    sweep_finished(minutes(11))
    with time_machine.travel(minutes(11.5), tick=False):
        assert not sweep_overdue_check().overdue
        sweep_overdue_check()
    assert len(alerts(RESUMED)) == 1
    with time_machine.travel(minutes(20), tick=False):
        sweep_overdue_check()
    assert len(alerts()) == 2  # a new spell


def test_a_sweep_of_some_clients_only_does_not_count():
    sweep_finished(T)
    sweep_finished(minutes(5), scope=SweepScope.MOVED)
    assert sweep_overdue_check(now=minutes(5.5)).overdue


def test_the_allowance_follows_the_sweeps_schedule():
    every_ten_minutes, _ = IntervalSchedule.objects.get_or_create(every=10, period="minutes")
    PeriodicTask.objects.filter(task="financing.margin_sweep").update(interval=every_ten_minutes)
    sweep_finished(T)
    assert not sweep_overdue_check(now=minutes(29)).overdue
    assert sweep_overdue_check(now=minutes(31)).overdue


def test_a_disabled_sweep_is_held_to_the_expected_interval(settings):
    settings.SWEEP_EXPECTED_INTERVAL_SECONDS = 60
    PeriodicTask.objects.filter(task="financing.margin_sweep").update(enabled=False)
    sweep_finished(T)
    assert sweep_overdue_check(now=minutes(4)).overdue


def test_a_sweep_that_never_finishes_is_overdue_and_none_begun_is_not():
    assert not sweep_overdue_check(now=minutes(60)).overdue
    SweepRun.objects.create(trigger="scheduled", scope=SweepScope.ALL, started_at=T)
    assert sweep_overdue_check(now=minutes(4)).overdue
    assert len(alerts()) == 1


def test_the_watchdog_runs_on_its_own_schedule():
    schedule = PeriodicTask.objects.get(task="financing.sweep_watchdog")
    assert schedule.enabled
    assert schedule.interval.every == 60
    sweep_finished(T)
    with time_machine.travel(minutes(5), tick=False):
        assert sweep_watchdog() is True
    assert len(alerts()) == 1


def test_the_admins_first_page_warns_and_alerts_when_beat_is_down(client):
    sweep_finished(T)
    login_as(client, StaffFactory(role="Compliance"))
    with time_machine.travel(minutes(10), tick=False):
        response = client.get(reverse("admin:index"))
    assert "The margin sweep has not finished for 10 minutes" in response.content.decode()
    assert len(alerts()) == 1
    with time_machine.travel(minutes(1.5), tick=False):
        assert "margin sweep has not finished" not in client.get(reverse("admin:index")).content.decode()
