"""Row locks taken in one fixed order, so that two services never wait on each other (Saleor's
``lock_objects.py``). The order is: facilities, then collateral pools, then the firm-wide exposure row (a
drawdown's, held from its firm-wide check to its commit: taken last, so that the checks of drawdowns on
different facilities run side by side), then anything else; inside one model, by primary key."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models, transaction


def lock_rows(queryset: models.QuerySet) -> list:
    """Lock the rows of ``queryset`` (ordered by pk) and return them. Must run inside a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_rows needs an open transaction")
    return list(queryset.select_for_update(of=("self",)).order_by("pk"))


def lock_one(model: type[models.Model], pk: object) -> models.Model:
    rows = lock_rows(model._default_manager.filter(pk=pk))
    if not rows:
        raise model.DoesNotExist(f"{model.__name__} {pk} does not exist")
    return rows[0]


def lock_many(model: type[models.Model], pks: Iterable[object]) -> list:
    return lock_rows(model._default_manager.filter(pk__in=sorted(set(pks))))
