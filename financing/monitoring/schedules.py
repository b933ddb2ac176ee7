"""The periodic work's schedules (django-celery-beat rows staff edit in the admin), guarded: every change is
audited, and a margin-critical schedule is disabled, deleted, slowed or otherwise changed only through a
four-eyes approval. Making one run more (enabling it, a shorter interval) takes effect at once
(docs/security.md)."""

from __future__ import annotations

import datetime
import json
from typing import Any

from django.db import models, transaction
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from accounts.approvals import ApprovalKind, approval_kind_register
from accounts.audit import Actor, actor_user, audit_event_record, json_value
from accounts.exceptions import FourEyesRequired
from accounts.models import ApprovalRequest
from accounts.services import approval_request_create
from core.exceptions import InvalidInput, PermissionRefused
from core.locks import lock_one
from core.tasks import task_queue_on_commit

# The schedules that keep margin monitoring alive, by the task they run (a schedule's name is free text). Losing
# one stops margin calls, forced sales or the alerts about them without anybody noticing.
MARGIN_CRITICAL_TASKS = {
    "financing.margin_sweep": "the margin sweep of every facility",
    "financing.monitor_prices": "the price refresh and the sweep of the holders of what moved",
    "financing.margin_call_deadlines": "margin-call deadlines turning into forced sales",
    "financing.forced_sales_step_all": "forced sales: placing, following and booking orders",
    "notifications.deliver_due_messages": "outbox delivery: staff alerts, client e-mails, webhooks",
    "financing.sweep_watchdog": "the alert when the margin sweep stops",
}
APPROVE_PERMISSION = "financing.approve_schedule_change"
# The fields of a schedule as stored (foreign keys by id), in the audit trail and in approval requests.
FIELDS = ["name", "task", "enabled", "interval_id", "crontab_id", "solar_id", "clocked_id", "start_time",
          "expires", "expire_seconds", "one_off", "args", "kwargs", "queue", "exchange", "routing_key",
          "priority", "headers", "description"]  # fmt: skip
DATETIME_FIELDS = {"start_time", "expires"}
HARMLESS_FIELDS = {"name", "description"}
TIMING_MODELS = (IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule)
PERIOD_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "microseconds": 0.000001}


def is_margin_critical(periodic_task: PeriodicTask) -> bool:
    return periodic_task.task in MARGIN_CRITICAL_TASKS


def interval_seconds(interval: IntervalSchedule | None) -> float | None:
    return None if interval is None else interval.every * PERIOD_SECONDS[interval.period]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)  # one spelling per instant, however the form gave it
    value = json_value(value)
    return value if value is None or isinstance(value, str | int | float | bool | dict | list) else str(value)


def schedule_values(periodic_task: PeriodicTask) -> dict[str, Any]:
    return {field: _plain(getattr(periodic_task, field)) for field in FIELDS}


def _as_stored(changes: dict[str, Any]) -> dict[str, Any]:
    """Changes by field name (``interval`` an instance, as the admin form gives them) as stored values."""
    stored = {}
    for name, value in changes.items():
        field = PeriodicTask._meta.get_field(name.removesuffix("_id"))
        attname = field.attname
        if attname not in FIELDS:
            raise InvalidInput(f"A schedule's {name} is not changed here.")
        stored[attname] = _plain(value.pk if isinstance(value, models.Model) else value)
    return stored


def _require(actor: Actor, permission: str, doing: str) -> None:
    user = actor_user(actor)
    if user is None or not user.is_active or not user.has_perm(permission):
        raise PermissionRefused(f"{getattr(user, 'username', None) or 'This actor'} may not {doing}.")


def _interval_seconds_of(interval_id) -> float | None:
    return interval_seconds(IntervalSchedule.objects.filter(pk=interval_id).first()) if interval_id else None


def needs_second_person(periodic_task: PeriodicTask, changes: dict[str, Any]) -> list[str]:
    """The changes to ``periodic_task`` (stored values) that could make margin-critical work run less, or
    not at all: all but a new name or description, enabling it, or a shorter interval. None for any other
    schedule."""
    if not is_margin_critical(periodic_task):
        return []
    current = schedule_values(periodic_task)
    weakening = []
    for field, value in changes.items():
        if current[field] == value or field in HARMLESS_FIELDS:
            continue
        if field == "enabled" and value is True:
            continue
        if field == "interval_id" and current["interval_id"] and value:
            before, after = _interval_seconds_of(current["interval_id"]), _interval_seconds_of(value)
            if before is not None and after is not None and after <= before:
                continue
        weakening.append(field)
    return weakening


def _apply(periodic_task: PeriodicTask, changes: dict[str, Any]) -> None:
    for field, value in changes.items():
        if field in DATETIME_FIELDS and isinstance(value, str):
            value = parse_datetime(value)
        setattr(periodic_task, field, value)
    if changes.get("enabled") is False:
        periodic_task.last_run_at = None  # as django-celery-beat's own disable does
    try:
        periodic_task.full_clean()
    except Exception as error:  # ValidationError: the schedule's own rules (one timing, JSON arguments)
        raise InvalidInput(f"{periodic_task.name}: {error}") from error


def _changed_events(actor, periodic_task, before: dict, after: dict, **extra) -> None:
    changed = [field for field in FIELDS if before[field] != after[field]]
    if changed:
        audit_event_record(
            actor=actor,
            action="schedule.changed",
            target=periodic_task,
            before={field: before[field] for field in changed},
            after={**{field: after[field] for field in changed}, "margin_critical": is_margin_critical(periodic_task),
                   **extra},
        )  # fmt: skip


@transaction.atomic
def periodic_task_create(*, actor: Actor, **fields: Any) -> PeriodicTask:
    _require(actor, "django_celery_beat.add_periodictask", "add schedules")
    periodic_task = PeriodicTask()
    _apply(periodic_task, _as_stored(fields))
    periodic_task.save()
    audit_event_record(
        actor=actor, action="schedule.created", target=periodic_task, after=schedule_values(periodic_task)
    )
    return periodic_task


@transaction.atomic
def periodic_task_update(*, periodic_task: PeriodicTask, actor: Actor, **changes: Any) -> PeriodicTask:
    """Change a schedule at once, audited; refused for a change that could weaken a margin-critical one
    (``schedule_change_request`` asks a second person for it)."""
    _require(actor, "django_celery_beat.change_periodictask", "change schedules")
    periodic_task = lock_one(PeriodicTask, periodic_task.pk)
    stored = _as_stored(changes)
    weakening = needs_second_person(periodic_task, stored)
    if weakening:
        raise FourEyesRequired(
            f"{periodic_task.name} keeps margin monitoring running ({MARGIN_CRITICAL_TASKS[periodic_task.task]}): "
            f"changing its {', '.join(weakening)} takes a second person's approval. Nothing was changed.",
            details={"fields": weakening},
        )
    before = schedule_values(periodic_task)
    _apply(periodic_task, stored)
    periodic_task.save()
    _changed_events(actor, periodic_task, before, schedule_values(periodic_task))
    return periodic_task


@transaction.atomic
def periodic_task_delete(*, periodic_task: PeriodicTask, actor: Actor) -> None:
    _require(actor, "django_celery_beat.delete_periodictask", "delete schedules")
    periodic_task = lock_one(PeriodicTask, periodic_task.pk)
    if is_margin_critical(periodic_task):
        raise FourEyesRequired(
            f"{periodic_task.name} keeps margin monitoring running: deleting it takes a second person's approval. "
            "Nothing was deleted."
        )
    audit_event_record(
        actor=actor, action="schedule.deleted", target=periodic_task, before=schedule_values(periodic_task)
    )
    periodic_task.delete()


@transaction.atomic
def periodic_task_run_now(*, periodic_task: PeriodicTask, actor: Actor) -> None:
    """Queue a schedule's task once, now (after the commit), audited."""
    _require(actor, "django_celery_beat.change_periodictask", "run schedules")
    audit_event_record(
        actor=actor, action="schedule.run_now", target=periodic_task, after={"task": periodic_task.task}
    )
    task_queue_on_commit(
        periodic_task.task, *json_value(_loads(periodic_task.args, [])), **_loads(periodic_task.kwargs, {})
    )


def _loads(text: str, default):
    try:
        return json.loads(text or "null") or default
    except ValueError:
        raise InvalidInput("The schedule's arguments are not valid JSON.") from None


# --- four-eyes changes to a margin-critical schedule -------------------------------------------


def _describe(proposed: dict[str, Any]) -> str:
    if proposed.get("delete"):
        return "delete the schedule"
    changes = proposed["changes"]
    words = []
    for field, value in changes.items():
        if field == "enabled":
            words.append("enable it" if value else "disable it")
        elif field == "interval_id":
            interval = IntervalSchedule.objects.filter(pk=value).first()
            words.append(f"run {interval}" if interval else "no interval")
        else:
            words.append(f"{field.removesuffix('_id').replace('_', ' ')} → {value}")
    return ", ".join(words)


def _clean(periodic_task: PeriodicTask, proposed: dict[str, Any]) -> dict[str, Any]:
    if set(proposed) == {"delete"} and proposed["delete"] is True:
        return {"delete": True}
    if set(proposed) != {"changes"} or not isinstance(proposed["changes"], dict) or not proposed["changes"]:
        raise InvalidInput("A schedule change proposes either changes or delete: true.")
    stored = _as_stored(proposed["changes"])
    current = schedule_values(periodic_task)
    changes = {field: value for field, value in stored.items() if current[field] != value}
    if not changes:
        raise InvalidInput(f"{periodic_task.name} is already like that.", code="no_change")
    trial = PeriodicTask.objects.get(pk=periodic_task.pk)
    _apply(trial, changes)  # the schedule's own rules, checked now rather than on approval
    return {"changes": changes}


def _apply_approved(
    *, target: PeriodicTask, proposed: dict[str, Any], actor: Actor, request: ApprovalRequest
) -> None:
    periodic_task = lock_one(PeriodicTask, target.pk)
    before = schedule_values(periodic_task)
    if proposed.get("delete"):
        audit_event_record(
            actor=actor, action="schedule.deleted", target=periodic_task,
            before=before, after={"approval_request": request.pk, "margin_critical": True},
        )  # fmt: skip
        periodic_task.delete()
        return
    _apply(periodic_task, proposed["changes"])
    periodic_task.save()
    _changed_events(actor, periodic_task, before, schedule_values(periodic_task), approval_request=request.pk)


SCHEDULE_CHANGE = approval_kind_register(
    ApprovalKind(
        key="schedule_change",
        label="Change to a margin-critical schedule",
        model=PeriodicTask,
        request_permission="django_celery_beat.change_periodictask",
        approve_permission=APPROVE_PERMISSION,
        clean=_clean,
        current=lambda periodic_task: {
            "enabled": periodic_task.enabled,
            "schedule": str(periodic_task.scheduler),
        },
        apply=_apply_approved,
        describe=_describe,
    )
)


def schedule_change_request(
    *, periodic_task: PeriodicTask, actor: Actor, changes: dict[str, Any] | None = None, delete: bool = False,
    reason: str = "",
) -> ApprovalRequest:  # fmt: skip
    """Ask a second person to change (``changes`` by field name) or delete a margin-critical schedule."""
    if delete:
        _require(actor, "django_celery_beat.delete_periodictask", "delete schedules")
    proposed = {"delete": True} if delete else {"changes": _as_stored(changes or {})}
    return approval_request_create(
        kind=SCHEDULE_CHANGE.key,
        target=PeriodicTask.objects.get(pk=periodic_task.pk),  # as stored, not as a form left it
        proposed=proposed,
        actor=actor,
        reason=reason,
    )


def schedule_change(
    *, periodic_task: PeriodicTask, actor: Actor, reason: str = "", **changes: Any
) -> ApprovalRequest | None:
    """Make a change to a schedule (by field name): at once when it cannot weaken margin monitoring, else as a
    four-eyes request. Returns the request when one was made."""
    stored = PeriodicTask.objects.get(pk=periodic_task.pk)
    if needs_second_person(stored, _as_stored(changes)):
        return schedule_change_request(periodic_task=stored, actor=actor, changes=changes, reason=reason)
    periodic_task_update(periodic_task=stored, actor=actor, **changes)
    return None


# --- the timings schedules share ---------------------------------------------------------------


def critical_schedules_using(timing: models.Model) -> list[PeriodicTask]:
    field = {IntervalSchedule: "interval", CrontabSchedule: "crontab", SolarSchedule: "solar",
             ClockedSchedule: "clocked"}[type(timing)]  # fmt: skip
    return list(
        PeriodicTask.objects.filter(**{field: timing}, task__in=MARGIN_CRITICAL_TASKS).order_by("name")
    )


def _timing_values(timing: models.Model) -> dict[str, Any]:
    return {
        field.attname: _plain(getattr(timing, field.attname))
        for field in timing._meta.concrete_fields
        if not field.primary_key
    }


@transaction.atomic
def timing_save(*, timing: models.Model, actor: Actor) -> models.Model:
    """Create or change an interval, crontab, solar or clocked timing, audited. A timing that margin-critical
    schedules use may only get shorter (an interval): point the schedule at another timing instead, which for
    a slower one is a four-eyes request."""
    model = type(timing)
    if model not in TIMING_MODELS:
        raise InvalidInput(f"{model.__name__} is not a schedule timing.")
    label = model._meta.model_name
    adding = timing.pk is None
    _require(actor, f"django_celery_beat.{'add' if adding else 'change'}_{label}", "change schedule timings")
    before = None
    if not adding:
        stored = lock_one(model, timing.pk)
        before = _timing_values(stored)
        users = critical_schedules_using(stored)
        shorter = (
            model is IntervalSchedule
            and interval_seconds(timing) is not None
            and interval_seconds(timing) <= interval_seconds(stored)
        )
        if users and before != _timing_values(timing) and not shorter:
            raise FourEyesRequired(
                f"{stored} is the timing of {', '.join(task.name for task in users)}, which keep margin monitoring "
                "running: it may only get shorter. Point the schedule at another timing instead (a slower one is "
                "a four-eyes request). Nothing was changed."
            )
    try:
        timing.full_clean()
    except Exception as error:
        raise InvalidInput(str(error)) from error
    timing.save()
    after = _timing_values(timing)
    if before != after:
        audit_event_record(
            actor=actor,
            action=f"schedule_timing.{'created' if adding else 'changed'}",
            target=timing,
            before=before,
            after=after,
        )
    return timing


@transaction.atomic
def timing_delete(*, timing: models.Model, actor: Actor) -> None:
    """Delete a timing and, as django-celery-beat does, the schedules using it: refused while a margin-critical
    schedule uses it; every schedule deleted with it is audited."""
    model = type(timing)
    _require(actor, f"django_celery_beat.delete_{model._meta.model_name}", "delete schedule timings")
    timing = lock_one(model, timing.pk)
    users = critical_schedules_using(timing)
    if users:
        raise FourEyesRequired(
            f"{timing} is the timing of {', '.join(task.name for task in users)}, which keep margin monitoring "
            "running: deleting it would delete them. Nothing was deleted."
        )
    field = {IntervalSchedule: "interval", CrontabSchedule: "crontab", SolarSchedule: "solar",
             ClockedSchedule: "clocked"}[model]  # fmt: skip
    for periodic_task in PeriodicTask.objects.filter(**{field: timing}).order_by("pk"):
        audit_event_record(
            actor=actor, action="schedule.deleted", target=periodic_task,
            before=schedule_values(periodic_task), after={"with_timing": str(timing)},
        )  # fmt: skip
    audit_event_record(
        actor=actor, action="schedule_timing.deleted", target=timing, before=_timing_values(timing)
    )
    timing.delete()
