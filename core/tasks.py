"""Background work queued by name once the current transaction commits: services never import a tasks
module (the tasks import the services), so the dependency points one way.

Queueing happens after the commit, so it must never turn a committed write into an error: when the broker
cannot be reached the failure is logged and the work waits for its periodic pick-up (docs/resilience.md)."""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

# Every task queued through ``task_queue_on_commit``, and the scheduled task that does its work when the
# message never reaches the broker (tests/core/test_tasks.py holds the code to this list).
PERIODIC_PICK_UP = {
    "notifications.deliver_outbox_message": "notifications.deliver_due_messages",
    "notifications.deliver_due_messages": "notifications.deliver_due_messages",
    "financing.forced_sale_step": "financing.forced_sales_step_all",
    "financing.forced_sales_start": "financing.forced_sales_step_all",
}


def _task(name: str):
    """The registered task ``name``; the apps' task modules are imported on first need (a web process has
    not loaded them, and an eager run needs the function itself)."""
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()
    return current_app.tasks[name]


def _queue(name: str, args: tuple, kwargs: dict) -> None:
    task = _task(name)
    if task.app.conf.task_always_eager:
        task.apply_async(
            args=args, kwargs=kwargs or None
        )  # runs here and now: its errors are the task's own, and propagate
        return
    try:
        task.apply_async(args=args, kwargs=kwargs or None)
    except Exception:
        logger.exception(
            "Could not queue %s%r after the commit (broker unreachable?); the write stands and %s picks "
            "the work up",
            name,
            args,
            PERIODIC_PICK_UP.get(name, "no periodic task"),
        )


def task_queue_on_commit(name: str, *args: object, **kwargs: object) -> None:
    """Queue the Celery task ``name`` with ``args`` (and ``kwargs``) once the current transaction commits (at
    once outside one); nothing is queued when it rolls back, and a broker that cannot be reached is logged,
    not raised."""
    transaction.on_commit(lambda: _queue(name, args, kwargs))
