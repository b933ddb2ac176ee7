"""The house lock order for a facility's money (``core.locks``): the firm-wide exposure row when firm
limits are checked, the facility, then the client's collateral pool. Every service that moves a
facility's debt or collateral takes its locks here, so two of them never wait on each other."""

from __future__ import annotations

from django.db import connection

from collateral.models import CollateralPool
from core.locks import lock_one
from financing.models import Facility, FirmExposure
from financing.selectors import facility_pool


def facility_and_pool_lock(
    facility: Facility, *, firm: bool = False
) -> tuple[Facility, CollateralPool | None]:
    """Lock (firm row,) facility, pool, in that order; return the facility and pool as locked."""
    if firm:
        FirmExposure.objects.bulk_create([FirmExposure(id=1)], ignore_conflicts=True)  # reference data
        lock_one(FirmExposure, 1)
    locked = lock_one(Facility, facility.pk)
    pool = facility_pool(locked)
    if pool is not None:
        pool = lock_one(CollateralPool, pool.pk)
    return locked, pool


# Sweeps run one at a time: each holds this transaction-level advisory lock (PostgreSQL) while it values and
# writes. Each stores margin states and fixed parts as of its own reading of the ledger, and a price-driven
# sweep trusts them (the debts, the fixed parts) for every client nothing was posted to since: a slow sweep
# committing over a later one would leave figures older than the postings the next sweep looks at.
SWEEP_LOCK_KEY = 4_712_001


def sweep_lock(*, shared: bool = False) -> None:
    """Take the sweeps' lock for the current transaction: alone (a sweep), or shared (a change a sweep under
    way must not miss, such as a facility closing while the sweep that first values it runs; and a batch of
    the margin-call ladder, which writes the same margin states: ``financing.monitoring.ladder.ladder_apply``).
    Nothing to take outside PostgreSQL, where sweeps do not run concurrently."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [SWEEP_LOCK_KEY])
