"""The house lock order for a facility's money (``core.locks``): the facility, then the client's collateral
pool, then (a drawdown, which checks the firm-wide cap) the firm-wide exposure row. Every service that moves a
facility's debt or collateral takes its locks here, so two of them never wait on each other."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction
from django.db.models import QuerySet

from collateral.models import CollateralPool
from core.locks import lock_one, lock_rows
from financing.models import Facility, FirmExposure


def facility_lock(facility: Facility, *, of_client: int | None = None) -> Facility:
    """Lock the facility (first in the house order); return it as locked, with its client and principal
    account, which every drawdown and repayment posts to. With ``of_client``, only that client's: another's
    is not locked, and is answered as one that does not exist."""
    facilities = Facility.objects.select_related("client", "principal_account").filter(pk=facility.pk)
    if of_client is not None:
        facilities = facilities.filter(client_id=of_client)
    (locked,) = lock_rows(facilities) or [None]
    if locked is None:
        raise Facility.DoesNotExist(f"Facility {facility.pk} does not exist")
    return locked


def facility_and_pool_lock(
    facility: Facility, *, of_client: int | None = None
) -> tuple[Facility, CollateralPool | None]:
    """Lock the facility, then the client's pool; return the facility (``facility_lock``) and the pool (with
    its account) as locked. A drawdown takes the firm row after these two (``firm_exposure_lock``)."""
    locked = facility_lock(facility, of_client=of_client)
    pools = lock_rows(CollateralPool.objects.select_related("account").filter(client_id=locked.client_id))
    return locked, (pools[0] if pools else None)


def pool_lock_then(client_id: int, then: Sequence[tuple[str, Sequence]]) -> list[list[tuple]] | None:
    """Lock the client's pool (after its facility, ``facility_lock``: the house order), then run each query of
    ``then`` (its SQL and parameters) and return the rows of each, all in one round trip (``_lock_then``). None
    where one round trip cannot carry them (the caller runs its queries itself, after ``facility_and_pool
    _lock``'s own look at the pool)."""
    if not one_round_trip():
        return None
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("pool_lock_then needs an open transaction")
    lock = (
        CollateralPool.objects.filter(client_id=client_id)
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list("pk")
    )
    return _lock_then(lock, then)[1]


def _lock_then(lock: QuerySet, then: Sequence[tuple[str, Sequence]]) -> tuple[list[tuple], list[list[tuple]]]:
    """Run ``lock`` (a ``SELECT … FOR UPDATE``), then each query of ``then`` (its SQL and parameters), in one
    round trip: statements of one query string, run one after the other, each reading from a snapshot of its
    own taken when it starts (READ COMMITTED), so after the lock is granted, as separate queries would. Returns
    the locked rows and the rows of each query. Only where ``one_round_trip()``."""
    lock_sql, params = lock.query.sql_with_params()
    statements, values = [lock_sql], [*params]
    for sql, sql_params in then:
        statements.append(sql)
        values.extend(sql_params)
    results = []
    with connection.cursor() as cursor:  # a client-side binding cursor: several statements may be sent
        cursor.execute("; ".join(statements), values)
        locked = cursor.fetchall()
        for _ in then:
            cursor.nextset()
            results.append(cursor.fetchall())
    return locked, results


def one_round_trip() -> bool:
    """Whether several statements may go in one ``execute``: PostgreSQL with client-side binding, Django's
    default with psycopg 3."""
    return connection.vendor == "postgresql" and not connection.settings_dict.get("OPTIONS", {}).get(
        "server_side_binding"
    )


def firm_exposure_lock(then: QuerySet | None = None) -> object:
    """Lock the firm-wide exposure row (made at first use: reference data), which every drawdown holds while
    it checks the firm-wide cap and posts, so that two drawdowns never both pass the cap. Taken after the
    facility and pool locks, and by drawdowns only: no service holds it while it waits for a facility.

    ``then``, a query of one value (the firm's loans: ``total_margin_loans_query``), is run once the lock is
    granted and its value returned (None without a row). On PostgreSQL both go in one round trip, as two
    statements of one query string: in READ COMMITTED each statement reads from a snapshot of its own, taken
    when it starts, so the second counts every drawdown committed before the lock was granted, as a second
    query would; the lock is held to the commit either way, and this is one wait for the network fewer while
    every other drawdown waits."""
    lock = FirmExposure.objects.filter(pk=1).select_for_update()
    if then is not None and one_round_trip():
        locked, (rows,) = _lock_then(lock.values_list("pk"), [then.query.sql_with_params()])
        if locked:
            return rows[0][0] if rows else None
    if not lock_rows(FirmExposure.objects.filter(pk=1)):
        FirmExposure.objects.bulk_create([FirmExposure(id=1)], ignore_conflicts=True)
        lock_one(FirmExposure, 1)
    if then is None:
        return None
    rows = list(then)
    return next(iter(rows[0].values())) if rows else None


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
