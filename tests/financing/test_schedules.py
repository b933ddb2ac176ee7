"""The schedules of the periodic work in the admin: read-only staff change nothing, a margin-critical schedule is
disabled, deleted or slowed only through a four-eyes request, and every change to any schedule is audited."""

import pytest
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.enums import ApprovalStatus
from accounts.exceptions import FourEyesRequired, FourEyesViolation
from accounts.models import ApprovalRequest, AuditEvent
from accounts.services import approval_request_approve
from core.exceptions import PermissionRefused
from financing.monitoring import schedules
from tests.accounts.factories import StaffFactory
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

SWEEP = "Margin sweep (all facilities)"
PURGE = "Forget old idempotency records"  # not margin-critical
CHANGELIST = "admin:django_celery_beat_periodictask_changelist"


def task(name: str) -> PeriodicTask:
    return PeriodicTask.objects.get(name=name)


def act(client, action: str, *names: str):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [task(name).pk for name in names]},
        follow=True,
    )


def schedule_form(periodic_task: PeriodicTask, **changes) -> dict:
    data = {
        "name": periodic_task.name,
        "regtask": "",
        "task": periodic_task.task,
        "enabled": "on" if periodic_task.enabled else "",
        "description": periodic_task.description,
        "interval": periodic_task.interval_id or "",
        "crontab": periodic_task.crontab_id or "",
        "solar": "",
        "clocked": "",
        "start_time_0": "",
        "start_time_1": "",
        "one_off": "",
        "args": periodic_task.args,
        "kwargs": periodic_task.kwargs,
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "priority": "",
        "headers": periodic_task.headers,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def schedule_events() -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith="schedule")
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    )


@pytest.fixture
def risk(client):
    officer = StaffFactory(role="Risk officer")
    login_as(client, officer)
    return officer


@pytest.mark.parametrize("action", ["enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks"])
def test_read_only_staff_cannot_use_the_schedule_actions(client, action):
    login_as(client, StaffFactory(role="Compliance"))
    response = act(client, action, SWEEP, PURGE)
    assert response.status_code == 200
    assert task(SWEEP).enabled
    assert task(PURGE).enabled
    assert not AuditEvent.objects.filter(action__startswith="schedule").exists()
    assert client.get(reverse(CHANGELIST)).context["action_form"] is None  # no action offered at all


def test_a_risk_officer_disabling_the_sweep_asks_a_second_person_and_it_keeps_running(client, risk):
    response = act(client, "disable_tasks", SWEEP, PURGE)
    assert "a second person approves" in response.content.decode()
    assert task(SWEEP).enabled
    assert not task(PURGE).enabled  # not margin-critical: at once
    request = ApprovalRequest.objects.get(kind="schedule_change")
    assert request.proposed == {"changes": {"enabled": False}}
    assert schedule_events() == ["schedule.changed"]  # the purge's
    with pytest.raises(FourEyesViolation):
        approval_request_approve(request=request, actor=risk)
    colleague = StaffFactory(role="Risk officer")
    approval_request_approve(request=request, actor=colleague)
    assert not task(SWEEP).enabled
    event = AuditEvent.objects.filter(action="schedule.changed", target_id=str(task(SWEEP).pk)).get()
    assert (event.actor, event.before, event.after) == (
        colleague,
        {"enabled": True},
        {"enabled": False, "margin_critical": True, "approval_request": request.pk},
    )


@pytest.mark.parametrize("role", ["Credit officer", "Operations", "Compliance"])
def test_only_risk_officers_approve_a_schedule_change(risk, role):
    request = schedules.schedule_change_request(
        periodic_task=task(SWEEP), actor=risk, changes={"enabled": False}
    )
    other = StaffFactory(role=role)
    with writes_nothing(), pytest.raises(PermissionRefused):
        approval_request_approve(request=request, actor=other)
    assert task(SWEEP).enabled


def test_toggling_a_margin_critical_schedule_off_is_a_request_and_on_is_at_once(client, risk):
    sweep = task(SWEEP)
    sweep.enabled = False
    sweep.save()
    act(client, "toggle_tasks", SWEEP)
    assert task(SWEEP).enabled
    act(client, "toggle_tasks", SWEEP)
    assert task(SWEEP).enabled
    assert ApprovalRequest.objects.get(kind="schedule_change").proposed == {"changes": {"enabled": False}}


def test_a_margin_critical_schedule_is_not_deleted_in_the_admin(client, risk):
    sweep = task(SWEEP)
    assert (
        client.get(reverse("admin:django_celery_beat_periodictask_delete", args=[sweep.pk])).status_code
        == 403
    )
    client.post(
        reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": [sweep.pk], "post": "yes"}
    )
    assert PeriodicTask.objects.filter(pk=sweep.pk).exists()
    with pytest.raises(FourEyesRequired):
        schedules.periodic_task_delete(periodic_task=sweep, actor=risk)
    assert PeriodicTask.objects.filter(pk=sweep.pk).exists()


def test_deleting_a_margin_critical_schedule_takes_a_second_person(client, risk):
    act(client, "request_deletion", SWEEP)
    request = ApprovalRequest.objects.get(kind="schedule_change")
    assert request.proposed == {"delete": True}
    approval_request_approve(request=request, actor=StaffFactory(role="Risk officer"))
    assert not PeriodicTask.objects.filter(name=SWEEP).exists()
    deleted = AuditEvent.objects.get(action="schedule.deleted")
    assert deleted.before["task"] == "financing.margin_sweep"
    assert deleted.after == {"approval_request": request.pk, "margin_critical": True}


def test_deleting_another_schedule_is_audited(client, risk):
    purge = task(PURGE)
    response = client.post(
        reverse("admin:django_celery_beat_periodictask_delete", args=[purge.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not PeriodicTask.objects.filter(pk=purge.pk).exists()
    assert AuditEvent.objects.get(action="schedule.deleted").before["task"] == "api.purge_idempotency_records"


def test_a_longer_interval_for_the_sweep_is_a_request_a_shorter_one_is_at_once(client, risk):
    sweep = task(SWEEP)
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    url = reverse("admin:django_celery_beat_periodictask_change", args=[sweep.pk])
    response = client.post(url, schedule_form(sweep, interval=hourly.pk), follow=True)
    assert "the change is request #" in response.content.decode()
    assert task(SWEEP).interval_id == sweep.interval_id
    assert ApprovalRequest.objects.get(kind="schedule_change").proposed == {
        "changes": {"interval_id": hourly.pk}
    }
    every_30, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    response = client.post(url, schedule_form(sweep, interval=every_30.pk))
    assert response.status_code == 302
    assert task(SWEEP).interval_id == every_30.pk
    event = AuditEvent.objects.get(action="schedule.changed")
    assert (event.before, event.after) == (
        {"interval_id": sweep.interval_id},
        {"interval_id": every_30.pk, "margin_critical": True},
    )


@pytest.mark.parametrize(
    "change",
    [
        {"task": "financing.interest_accrual"},
        {"start_time_0": "2999-01-01", "start_time_1": "00:00:00"},
        {"expire_seconds": "1"},
        {"one_off": "on"},
        {"queue": "nowhere"},
        {"kwargs": '{"trigger": "never"}'},
    ],
)
def test_any_other_change_that_could_stop_the_sweep_takes_a_second_person(client, risk, change):
    sweep = task(SWEEP)
    before = schedules.schedule_values(sweep)
    client.post(
        reverse("admin:django_celery_beat_periodictask_change", args=[sweep.pk]),
        schedule_form(sweep, **change),
    )
    assert schedules.schedule_values(task(SWEEP)) == before
    assert ApprovalRequest.objects.filter(kind="schedule_change", status=ApprovalStatus.PENDING).count() == 1


def test_a_new_description_applies_at_once_and_is_audited(client, risk):
    sweep = task(SWEEP)
    response = client.post(
        reverse("admin:django_celery_beat_periodictask_change", args=[sweep.pk]),
        schedule_form(sweep, description="Every facility, every minute."),
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="schedule.changed")
    assert event.after == {"description": "Every facility, every minute.", "margin_critical": True}
    assert not ApprovalRequest.objects.filter(kind="schedule_change").exists()


def test_the_interval_the_sweep_uses_is_not_lengthened_or_deleted(client, risk):
    interval = task(SWEEP).interval
    url = reverse("admin:django_celery_beat_intervalschedule_change", args=[interval.pk])
    formset = {"periodictask_set-TOTAL_FORMS": "0", "periodictask_set-INITIAL_FORMS": "0"}
    response = client.post(url, {"every": "3600", "period": "seconds", **formset}, follow=True)
    assert "it may only get shorter" in response.content.decode()
    interval.refresh_from_db()
    assert (interval.every, interval.period) == (60, "seconds")
    assert (
        client.get(
            reverse("admin:django_celery_beat_intervalschedule_delete", args=[interval.pk])
        ).status_code
        == 403
    )
    with pytest.raises(FourEyesRequired):
        schedules.timing_delete(timing=interval, actor=risk)
    response = client.post(url, {"every": "30", "period": "seconds", **formset})
    assert response.status_code == 302
    interval.refresh_from_db()
    assert interval.every == 30
    event = AuditEvent.objects.get(action="schedule_timing.changed")
    assert (event.before["every"], event.after["every"]) == (60, 30)


def test_running_a_schedule_now_needs_the_change_permission_and_is_audited(client, risk):
    act(client, "run_tasks", PURGE)
    assert AuditEvent.objects.get(action="schedule.run_now").actor == risk
    with pytest.raises(PermissionRefused):
        schedules.periodic_task_run_now(periodic_task=task(PURGE), actor=StaffFactory(role="Compliance"))


def test_a_new_schedule_is_audited(client, risk):
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    new = PeriodicTask(name="Extra sweep", task="financing.margin_sweep", interval=hourly)
    response = client.post(reverse("admin:django_celery_beat_periodictask_add"), schedule_form(new))
    assert response.status_code == 302, response.content.decode()[:3000]
    created = AuditEvent.objects.get(action="schedule.created")
    assert (created.actor, created.after["task"], created.after["interval_id"]) == (
        risk,
        "financing.margin_sweep",
        hourly.pk,
    )


def test_the_service_refuses_a_weakening_change_itself(risk):
    with pytest.raises(FourEyesRequired, match="second person"):
        schedules.periodic_task_update(periodic_task=task(SWEEP), actor=risk, enabled=False)
    assert task(SWEEP).enabled
    assert not AuditEvent.objects.filter(action__startswith="schedule").exists()


def test_the_margin_critical_schedules_are_the_ones_the_migrations_make():
    critical = set(
        PeriodicTask.objects.filter(task__in=schedules.MARGIN_CRITICAL_TASKS).values_list("task", flat=True)
    )
    assert critical == set(schedules.MARGIN_CRITICAL_TASKS)
