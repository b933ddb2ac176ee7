"""The margin sweep: revalue pools after prices move, keep each facility's margin state, and write a
ratio snapshot whenever the ratio moves.

It is set-based. On PostgreSQL it takes three steps, whatever the size of the book: the per-asset HKD unit
values (price × FX) and haircuts go into a temporary table (a few hundred rows, computed in Python from the
current prices); one statement puts the facilities in scope into a second temporary table, each with its
policy's thresholds, its previous margin state and its debt; and one statement with data-modifying CTEs
values every position behind them (market value, margin value with haircuts and concentration cuts, ratio
and status) and writes the snapshots and the margin states that changed. The rounding is the same as
``collateral.calculations`` (market value half-up to the cent, margin value down to the cent); the tests
check the two agree. On other databases (the embedded SQLite demo) the same steps run with the valuation
done in Python from one bulk read of the balances.

When only some assets moved, only pools holding them are revalued, together with any client whose ledger
accounts were posted to since the previous sweep (deposits, drawdowns, interest); only those clients'
debts are read from the ledger, the others' are the margin state's (only postings change a debt). Running
it twice on the same prices writes nothing the second time."""

from __future__ import annotations

import datetime
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from collateral.calculations import PositionInput, margin_ratio, pool_valuation
from collateral.models import Asset
from collateral.selectors import current_prices, fx_to_hkd
from financing.calculations import Thresholds, margin_status
from financing.enums import FacilityStatus, SweepScope
from financing.models import Facility, MarginPolicy, MarginState, RatioSnapshot, SweepRun
from financing.selectors import default_policy, thresholds_of
from ledger.enums import AccountKind
from ledger.models import Account, Balance, Leg


@dataclass(frozen=True)
class AssetUnit:
    symbol: str
    unit_value: Decimal | None  # HKD per unit (price × FX); None: no price or no FX
    haircut: Decimal
    concentration_limit: Decimal | None
    eligible: bool


@dataclass
class SweepResult:
    run: SweepRun
    facilities_valued: int = 0
    states_changed: int = 0
    snapshots_written: int = 0
    ladder_actions: int = 0
    changed_facility_ids: list[int] = field(default_factory=list)


def asset_units() -> list[AssetUnit]:
    prices = current_prices()
    fx = fx_to_hkd()
    units = []
    for asset in Asset.objects.all():
        if asset.kind == "cash":
            price, currency = Decimal(1), asset.currency
        else:
            quote = prices.get(asset.symbol)
            price, currency = (quote.price, quote.currency) if quote else (None, asset.currency)
        rate = fx.get(currency)
        unit_value = price * rate if price is not None and rate is not None else None
        units.append(
            AssetUnit(asset.symbol, unit_value, asset.haircut, asset.concentration_limit, asset.eligible)
        )
    return units


def _previous_sweep_start() -> datetime.datetime | None:
    """When the last finished run that looked at every client posted to started. A run for given clients
    does not count: a client posted to before it and not among them would otherwise be left out of every
    price-driven sweep after it (its debt and holdings taken from a state that no longer holds)."""
    run = (
        SweepRun.objects.filter(finished_at__isnull=False, scope__in=[SweepScope.ALL, SweepScope.MOVED])
        .order_by("-started_at")
        .first()
    )
    return run.started_at if run else None


def posted_since(since: datetime.datetime | None) -> datetime.datetime:
    """Postings from this moment on bring their clients into a price-driven sweep: a little before the
    previous sweep started, so that a transaction still open when that sweep read the balances is picked up
    by this one. With no previous sweep, everything counts."""
    if since is None:
        return datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return since - datetime.timedelta(seconds=settings.SWEEP_POSTING_LOOKBACK_SECONDS)


def _clients_in_scope(symbols: list[str] | None, since: datetime.datetime | None) -> list[int] | None:
    """Client ids to revalue (the generic path): holders of the moved assets and clients posted to since
    ``since``; None means every client (a full sweep)."""
    if symbols is None:
        return None
    clients = set(
        Balance.objects.filter(
            account__kind=AccountKind.COLLATERAL, instrument_id__in=symbols, account__client__isnull=False
        )
        .exclude(amount=0)
        .values_list("account__client_id", flat=True)
    )
    touched = Leg.objects.filter(transaction__posted_at__gte=posted_since(since)).values("account_id")
    clients |= set(
        Account.objects.filter(pk__in=touched, client__isnull=False).values_list("client_id", flat=True)
    )
    return sorted(clients)


# The facilities in scope, by one of three filters: every open facility; those of given clients; or those
# of the holders of the moved assets plus clients whose ledger accounts were posted to since a moment.
# Worked out inside the statement, so that a sweep never ships tens of thousands of ids back and forth.
SCOPE_FILTERS = {
    "all": "",
    "clients": "AND f.client_id = ANY(%(clients)s)",
    "moved": """AND (p.account_id IN (SELECT account_id FROM ledger_balance
                                     WHERE instrument_id = ANY(%(symbols)s) AND amount <> 0)
             OR f.client_id IN (SELECT client_id FROM touched))""",
}

# Clients whose ledger accounts were posted to since a moment (the "moved" scope only).
TOUCHED_CTE = """WITH touched AS MATERIALIZED (
    SELECT DISTINCT a.client_id FROM ledger_transaction t
      JOIN ledger_leg l ON l.transaction_id = t.id
      JOIN ledger_account a ON a.id = l.account_id
     WHERE t.posted_at >= %(since)s AND a.client_id IS NOT NULL
)"""

# A facility's debt changes only by postings to its loan accounts. In a price-driven sweep ("moved"),
# the debt the margin state holds is therefore still exact for every client nothing was posted to since the
# previous sweep (the same guarantee the scope relies on), and only the others' balances are read; the
# other scopes read every debt from the ledger.
KNOWN_DEBT = {
    "all": "NULL::numeric",
    "clients": "NULL::numeric",
    "moved": "CASE WHEN f.client_id IN (SELECT client_id FROM touched) THEN NULL ELSE ms.debt END",
}

# The facilities in scope, each with its policy's thresholds, its previous margin state and its debt, into
# a temporary table: one row each, read by the valuation below. A table rather than a CTE because the
# planner knows its size, and picks hash joins for the tens of thousands of pools behind it.
SCOPE_SQL = """
CREATE TEMP TABLE sweep_scope ON COMMIT DROP AS {touched}
SELECT f.id AS facility_id, f.client_id, COALESCE(mp.warning, %(default_warning)s) AS warning,
       COALESCE(mp.margin_call, %(default_margin_call)s) AS margin_call,
       COALESCE(mp.forced_sale, %(default_forced_sale)s) AS forced_sale,
       ms.facility_id IS NULL AS is_new, ms.status AS old_status, ms.margin_ratio AS old_ratio,
       ms.market_value AS old_market_value, ms.margin_value AS old_margin_value, ms.debt AS old_debt,
       COALESCE({known_debt}, (
           SELECT COALESCE(SUM(b.amount), 0) FROM ledger_balance b
            WHERE b.account_id IN (f.principal_account_id, f.interest_account_id, f.fees_account_id)
              AND b.instrument_id = 'HKD'
       ))::numeric(20, 2) AS debt
  FROM financing_facility f
  LEFT JOIN collateral_collateralpool p ON p.client_id = f.client_id
  LEFT JOIN financing_marginpolicy mp ON mp.id = f.policy_id
  LEFT JOIN financing_marginstate ms ON ms.facility_id = f.id
 WHERE f.status <> 'closed' {scope_filter}
"""

# Market value per position (half-up to the cent), the pool's total by a window, margin value with the
# concentration cut (down to the cent), then ratio and status by the facility's policy: the same rules as
# collateral.calculations and financing.calculations.
VALUATION_CTES = """
position_values AS (
    SELECT p.client_id, u.haircut, u.concentration_limit, u.eligible, ROUND(b.amount * u.unit_value, 2) AS mv
      FROM sweep_scope s
      JOIN collateral_collateralpool p ON p.client_id = s.client_id
      JOIN ledger_balance b ON b.account_id = p.account_id AND b.amount <> 0
      JOIN sweep_units u ON u.symbol = b.instrument_id AND u.unit_value IS NOT NULL
),
positions AS (
    SELECT pv.*, SUM(pv.mv) OVER (PARTITION BY pv.client_id) AS pool_mv FROM position_values pv
),
pool_values AS (
    SELECT client_id, MAX(pool_mv) AS market_value,
           SUM(CASE WHEN eligible THEN
                   FLOOR(LEAST(mv, COALESCE(concentration_limit * pool_mv, mv)) * (1 - haircut) * 100) / 100
               ELSE 0 END) AS margin_value
      FROM positions GROUP BY client_id
),
valued AS (
    SELECT s.*,
           COALESCE(v.market_value, 0)::numeric(20, 2) AS market_value,
           GREATEST(COALESCE(v.margin_value, 0), 0)::numeric(20, 2) AS margin_value
      FROM sweep_scope s
      LEFT JOIN pool_values v ON v.client_id = s.client_id
),
result AS (
    SELECT v.*,
           CASE WHEN v.debt <= 0 THEN 0
                WHEN v.margin_value <= 0 THEN NULL
                ELSE ROUND(v.debt::numeric(40, 20) / v.margin_value, 8) END AS margin_ratio,
           CASE WHEN v.debt <= 0 THEN 'no_debt'
                WHEN v.debt >= v.forced_sale * v.margin_value THEN 'forced_sale'
                WHEN v.debt > v.margin_call * v.margin_value THEN 'margin_call'
                WHEN v.debt >= v.warning * v.margin_value THEN 'warning'
                ELSE 'ok' END AS status
      FROM valued v
)"""

# One statement: value, then write the margin states and snapshots that changed.
SWEEP_SQL = (
    "WITH"
    + VALUATION_CTES
    + """,
changed AS (
    SELECT r.* FROM result r
     WHERE r.is_new
        OR r.old_ratio IS DISTINCT FROM r.margin_ratio
        OR r.old_status <> r.status
        OR r.old_market_value <> r.market_value
        OR r.old_margin_value <> r.margin_value
        OR r.old_debt <> r.debt
),
snapshots AS (
    INSERT INTO financing_ratiosnapshot (facility_id, taken_at, market_value, margin_value, debt, margin_ratio, status)
    SELECT c.facility_id, %(now)s, c.market_value, c.margin_value, c.debt, c.margin_ratio, c.status
      FROM changed c
     WHERE c.is_new OR c.margin_ratio IS DISTINCT FROM c.old_ratio OR c.status <> c.old_status
    RETURNING 1
),
updated AS (
    UPDATE financing_marginstate s
       SET market_value = c.market_value, margin_value = c.margin_value, debt = c.debt,
           margin_ratio = c.margin_ratio, valued_at = %(now)s,
           status_since = CASE WHEN s.status <> c.status THEN %(now)s ELSE s.status_since END,
           status = c.status
      FROM changed c
     WHERE s.facility_id = c.facility_id AND NOT c.is_new
    RETURNING 1
),
inserted AS (
    INSERT INTO financing_marginstate (facility_id, market_value, margin_value, debt, margin_ratio, status,
                                       notified_status, valued_at, status_since)
    SELECT c.facility_id, c.market_value, c.margin_value, c.debt, c.margin_ratio, c.status,
           CASE WHEN c.status IN ('no_debt', 'ok') THEN c.status ELSE 'ok' END, %(now)s, %(now)s
      FROM changed c WHERE c.is_new
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM sweep_scope),
       (SELECT COUNT(*) FROM updated) + (SELECT COUNT(*) FROM inserted),
       (SELECT COUNT(*) FROM snapshots)
"""
)

VALUATIONS_SQL = (
    "WITH"
    + VALUATION_CTES
    + "\nSELECT facility_id, market_value, margin_value, debt, margin_ratio, status FROM result"
)


def _scope_table(cursor, scope: str, params: dict[str, object]) -> None:
    cursor.execute("DROP TABLE IF EXISTS pg_temp.sweep_scope")
    cursor.execute(
        SCOPE_SQL.format(
            touched=TOUCHED_CTE if scope == "moved" else "",
            scope_filter=SCOPE_FILTERS[scope],
            known_debt=KNOWN_DEBT[scope],
        ),
        params,
    )


# Sorting and hashing a whole book fits in memory with this; PostgreSQL's default (4 MB) spills to disk.
SWEEP_WORK_MEM = "128MB"


def _prepare(cursor, scope: str, params: dict[str, object]) -> dict[str, object]:
    """Load the per-asset unit values and the facilities in scope into temporary tables; return the
    statement's parameters."""
    units = asset_units()
    cursor.execute(f"SET LOCAL work_mem = '{SWEEP_WORK_MEM}'")
    # JIT compiling the statement costs more than it saves: the work is numeric arithmetic, not expression
    # evaluation (measured: 70 ms of compilation for a 2 s statement).
    cursor.execute("SET LOCAL jit = off")
    # ON COMMIT DROP cleans up after a committed sweep; an enclosing transaction (a test, the ladder after
    # the sweep) keeps the table, hence the explicit drop.
    cursor.execute("DROP TABLE IF EXISTS pg_temp.sweep_units")
    cursor.execute(
        "CREATE TEMP TABLE sweep_units (symbol varchar(20) PRIMARY KEY, unit_value numeric, haircut numeric, "
        "concentration_limit numeric, eligible boolean) ON COMMIT DROP"
    )
    if units:
        cursor.executemany(
            "INSERT INTO sweep_units VALUES (%s, %s, %s, %s, %s)",
            [(u.symbol, u.unit_value, u.haircut, u.concentration_limit, u.eligible) for u in units],
        )
    default = default_policy()
    params = {
        "default_warning": default.warning,
        "default_margin_call": default.margin_call,
        "default_forced_sale": default.forced_sale,
        **params,
    }
    _scope_table(cursor, scope, params)
    return params


def _scope(clients: list[int] | None, symbols: list[str] | None, since: datetime.datetime | None):
    if clients is not None:
        return SweepScope.CLIENTS, {"clients": clients}
    if symbols is None:
        return SweepScope.ALL, {}
    return SweepScope.MOVED, {"symbols": symbols, "since": posted_since(since)}


# Sweeps run one at a time (a transaction-level advisory lock). Each stores margin states as of its own
# reading of the ledger, and a price-driven sweep takes the debts of clients nothing was posted to from
# them: a slow sweep committing over a later one would leave a debt older than the postings the next sweep
# looks at.
SWEEP_LOCK_KEY = 4_712_001


def _sweep_postgresql(
    clients: list[int] | None,
    symbols: list[str] | None,
    since: datetime.datetime | None,
    now: datetime.datetime,
) -> tuple[int, int, int, int]:
    """Valued, changed, snapshots written, and the milliseconds spent finding the scope."""
    scope, params = _scope(clients, symbols, since)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SWEEP_LOCK_KEY])
        started = time.perf_counter()
        params = _prepare(cursor, scope, {**params, "now": now})
        scope_ms = _ms_since(started)
        cursor.execute(SWEEP_SQL, params)
        valued, changed, snapshots = cursor.fetchone()
    return valued, changed, snapshots, scope_ms


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


Figures = tuple[int, Decimal, Decimal, Decimal, Decimal | None, str]


def valuations_of(clients: list[int]) -> dict[int, Figures]:
    """Live figures (facility id, market value, margin value, debt, ratio, status) of the open facilities
    of ``clients``: one statement on PostgreSQL, one bulk read and the pure calculations elsewhere."""
    if connection.vendor != "postgresql":
        return {row[0]: row for row in facility_figures(clients)}
    with connection.cursor() as cursor:
        params = _prepare(cursor, "clients", {"clients": clients})
        cursor.execute(VALUATIONS_SQL, params)
        rows = cursor.fetchall()
    return {row[0]: tuple(row) for row in rows}


def facility_figures(
    clients: list[int] | None,
) -> list[tuple[int, Decimal, Decimal, Decimal, Decimal | None, str]]:
    """(facility id, market value, margin value, debt, ratio, status) for every open facility in scope,
    computed with ``collateral.calculations`` from one bulk read of the balances."""
    facilities = Facility.objects.exclude(status=FacilityStatus.CLOSED)
    if clients is not None:
        facilities = facilities.filter(client_id__in=clients)
    facilities = list(facilities.select_related("client__collateral_pool"))
    policies: dict[int | None, Thresholds] = {None: thresholds_of(default_policy())}
    for policy in MarginPolicy.objects.filter(pk__in={f.policy_id for f in facilities if f.policy_id}):
        policies[policy.pk] = thresholds_of(policy)
    pool_accounts = {
        f.pk: f.client.collateral_pool.account_id for f in facilities if hasattr(f.client, "collateral_pool")
    }
    debt_accounts = {
        a: f.pk
        for f in facilities
        for a in (f.principal_account_id, f.interest_account_id, f.fees_account_id)
    }
    balances: dict[int, dict[str, Decimal]] = defaultdict(dict)
    rows = Balance.objects.filter(account_id__in=[*pool_accounts.values(), *debt_accounts]).exclude(amount=0)
    for account_id, code, amount in rows.values_list("account_id", "instrument_id", "amount"):
        balances[account_id][code] = amount
    units = {u.symbol: u for u in asset_units()}
    results = []
    for facility in facilities:
        holdings = balances.get(pool_accounts.get(facility.pk), {})
        inputs = [
            PositionInput(
                symbol=symbol,
                quantity=quantity,
                price=units[symbol].unit_value,
                fx_to_hkd=Decimal(1),
                haircut=units[symbol].haircut,
                concentration_limit=units[symbol].concentration_limit,
                eligible=units[symbol].eligible,
            )
            for symbol, quantity in holdings.items()
        ]
        valuation = pool_valuation(inputs)
        debt = sum(
            (
                balances.get(a, {}).get("HKD", Decimal(0))
                for a in (
                    facility.principal_account_id,
                    facility.interest_account_id,
                    facility.fees_account_id,
                )
            ),
            Decimal(0),
        ).quantize(Decimal("0.01"))
        thresholds = policies[facility.policy_id]
        results.append(
            (
                facility.pk,
                valuation.market_value,
                valuation.margin_value,
                debt,
                margin_ratio(debt, valuation.margin_value),
                str(margin_status(debt, valuation.margin_value, thresholds)),
            )
        )
    return results


def _sweep_generic(clients: list[int] | None, now: datetime.datetime) -> tuple[int, int, int]:
    figures = facility_figures(clients)
    states = {s.facility_id: s for s in MarginState.objects.filter(facility_id__in=[f[0] for f in figures])}
    snapshots, updates, inserts = [], [], []
    for facility_id, market_value, margin_value, debt, ratio, status in figures:
        state = states.get(facility_id)
        if state is None:
            notified = status if status in ("no_debt", "ok") else "ok"
            inserts.append(
                MarginState(
                    facility_id=facility_id, market_value=market_value, margin_value=margin_value, debt=debt,
                    margin_ratio=ratio, status=status, notified_status=notified, valued_at=now, status_since=now,
                )
            )  # fmt: skip
            snapshots.append(RatioSnapshot(facility_id=facility_id, taken_at=now, market_value=market_value,
                                           margin_value=margin_value, debt=debt, margin_ratio=ratio, status=status))  # fmt: skip
            continue
        moved = state.margin_ratio != ratio or state.status != status
        if not moved and (state.market_value, state.margin_value, state.debt) == (
            market_value,
            margin_value,
            debt,
        ):
            continue
        if moved:
            snapshots.append(RatioSnapshot(facility_id=facility_id, taken_at=now, market_value=market_value,
                                           margin_value=margin_value, debt=debt, margin_ratio=ratio, status=status))  # fmt: skip
        if state.status != status:
            state.status_since = now
        state.market_value, state.margin_value, state.debt = market_value, margin_value, debt
        state.margin_ratio, state.status, state.valued_at = ratio, status, now
        updates.append(state)
    MarginState.objects.bulk_create(inserts)
    MarginState.objects.bulk_update(
        updates,
        ["market_value", "margin_value", "debt", "margin_ratio", "status", "valued_at", "status_since"],
    )
    RatioSnapshot.objects.bulk_create(snapshots)
    return len(figures), len(inserts) + len(updates), len(snapshots)


def sweep_run(
    *,
    symbols: list[str] | None = None,
    clients: list[int] | None = None,
    trigger: str = "full",
    ladder: bool = True,
) -> SweepResult:
    """Revalue the facilities in scope, store the margin states and snapshots that changed, then let the
    margin-call ladder act on what needs it. Scope: the given ``clients``; or the holders of ``symbols``
    (and clients posted to since the last sweep); or, with neither, everybody."""
    from financing.ladder import (
        ladder_run,  # the ladder uses services that use selectors of this module's data
    )

    started = time.perf_counter()
    now = timezone.now()
    since = _previous_sweep_start()
    run = SweepRun.objects.create(
        trigger=trigger,
        scope=_scope(clients, symbols, since)[0],
        symbols=sorted(symbols) if symbols else [],
        started_at=now,
    )
    with transaction.atomic():
        scope_started = time.perf_counter()
        if connection.vendor == "postgresql":
            valued, changed, snapshots, run.scope_ms = _sweep_postgresql(clients, symbols, since, now)
        else:
            if clients is None:
                clients = _clients_in_scope(symbols, since)
            run.scope_ms = _ms_since(scope_started)
            valued, changed, snapshots = _sweep_generic(clients, now)
    result = SweepResult(
        run=run, facilities_valued=valued, states_changed=changed, snapshots_written=snapshots
    )
    ladder_started = time.perf_counter()
    if ladder:
        result.ladder_actions = ladder_run()
    run.ladder_ms = _ms_since(ladder_started)
    run.finished_at = timezone.now()
    run.facilities_valued, run.states_changed = valued, changed
    run.snapshots_written, run.ladder_actions = snapshots, result.ladder_actions
    run.duration_ms = _ms_since(started)
    run.save(
        update_fields=[
            "finished_at",
            "facilities_valued",
            "states_changed",
            "snapshots_written",
            "ladder_actions",
            "duration_ms",
            "scope_ms",
            "ladder_ms",
        ]
    )
    return result
