"""Background work queued by name once the current transaction commits: services never import a tasks
module (the tasks import the services), so the dependency points one way."""

from __future__ import annotations

from celery import current_app
from django.db import transaction


def _task(name: str):
    """The registered task ``name``; the apps' task modules are imported on first need (a web process has
    not loaded them, and an eager run needs the function itself)."""
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()
    return current_app.tasks[name]


def task_queue_on_commit(name: str, *args: object, **kwargs: object) -> None:
    """Queue the Celery task ``name`` with ``args`` (and ``kwargs``) once the current transaction commits (at
    once outside one); nothing is queued when it rolls back."""
    transaction.on_commit(lambda: _task(name).apply_async(args=args, kwargs=kwargs or None))
