"""Test helpers shared by every app."""

from __future__ import annotations

import contextlib
import sys
import sysconfig
from pathlib import Path

from django.apps import apps
from django.db import connection

REPOSITORY = Path(__file__).resolve().parent.parent
_INSTALLED_CODE = {Path(p).resolve() for p in (sys.prefix, *sysconfig.get_paths().values())}


def project_apps() -> list[str]:
    """The labels of the installed apps whose code lives in this repository (not in the virtualenv kept
    inside it): every app the project has, and any it adds, with no list to keep by hand."""
    labels = []
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if path.is_relative_to(REPOSITORY) and not any(path.is_relative_to(p) for p in _INSTALLED_CODE):
            labels.append(config.label)
    return labels


def project_tables() -> list[str]:
    """Every table of every project app, many-to-many tables included."""
    tables = set()
    for label in project_apps():
        for model in apps.get_app_config(label).get_models(include_auto_created=True):
            if not model._meta.proxy:
                tables.add(model._meta.db_table)
    return sorted(tables)


def row_counts() -> dict[str, int]:
    """The number of rows in each project table, all read by one statement."""
    quote = connection.ops.quote_name
    sql = " UNION ALL ".join(f"SELECT '{table}', COUNT(*) FROM {quote(table)}" for table in project_tables())
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return dict(cursor.fetchall())


def login_as(client, user) -> None:
    """Log ``client`` in as ``user`` the quick way (``force_login``); a member of staff also with their second
    factor verified, as after the real pages (tests/accounts/test_second_factor.py drives those)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client.force_login(user)
    if user.is_staff or user.is_superuser:
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()


@contextlib.contextmanager
def writes_nothing():
    """Assert that the block changes no row count in any project table (use it around a refusal)."""
    before = row_counts()
    yield
    after = row_counts()
    changed = {table: (before[table], after[table]) for table in before if before[table] != after[table]}
    assert not changed, f"rows were written: {changed}"
