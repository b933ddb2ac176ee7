"""Test helpers shared by every app."""

from __future__ import annotations

import contextlib

from django.apps import apps

PROJECT_APPS = ("accounts", "ledger", "collateral", "financing")


def row_counts() -> dict[str, int]:
    counts = {}
    for app_label in PROJECT_APPS:
        for model in apps.get_app_config(app_label).get_models():
            counts[model._meta.label] = model._default_manager.count()
    return counts


@contextlib.contextmanager
def writes_nothing():
    """Assert that the block changes no row count in any project table (use it around a refusal)."""
    before = row_counts()
    yield
    after = row_counts()
    changed = {label: (before[label], after[label]) for label in before if before[label] != after[label]}
    assert not changed, f"rows were written: {changed}"
