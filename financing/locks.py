"""The house lock order for a facility's money (``core.locks``): the firm-wide exposure row when firm
limits are checked, the facility, then the client's collateral pool. Every service that moves a
facility's debt or collateral takes its locks here, so two of them never wait on each other."""

from __future__ import annotations

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
