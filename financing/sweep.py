"""The margin sweep: revalue pools after prices move, keep each facility's margin state, and write a
ratio snapshot whenever the ratio moves.

It is set-based. On PostgreSQL the whole valuation is one statement over every position in scope: the
per-asset HKD unit values (price × FX) and haircuts go into a temporary table (a few hundred rows, computed
in Python from the current prices), one statement computes market value, margin value (haircuts and
concentration cuts), debt, ratio and status per facility into a second temporary table, and one statement
with data-modifying CTEs writes the snapshots and the margin states that changed. The rounding is the
same as ``collateral.calculations`` (market value half-up to the cent, margin value down to the cent); the
tests check the two agree. On other databases (the embedded SQLite demo) the same steps run with the
valuation done in Python from one bulk read of the balances.

When only some assets moved, only pools holding them are revalued, together with any client whose ledger
accounts were posted to since the previous sweep (deposits, drawdowns, interest). Running it twice on
the same prices writes nothing the second time."""

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
from financing.enums import FacilityStatus
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
    run = SweepRun.objects.filter(finished_at__isnull=False).order_by("-started_at").first()
    return run.started_at if run else None


def _clients_in_scope(symbols: list[str] | None, since: datetime.datetime | None) -> list[int] | None:
    """Client ids to revalue: holders of the moved assets and clients posted to since ``since``; None
    means every client (a full sweep)."""
    if symbols is None:
        return None
    clients = set(
        Balance.objects.filter(
            account__kind=AccountKind.COLLATERAL, instrument_id__in=symbols, account__client__isnull=False
        )
        .exclude(amount=0)
        .values_list("account__client_id", flat=True)
    )
    if since is not None:
        # Look back a little before the previous sweep started: a transaction that was still open when that
        # sweep read the balances is picked up by this one.
        lookback = datetime.timedelta(seconds=settings.SWEEP_POSTING_LOOKBACK_SECONDS)
        touched = Leg.objects.filter(transaction__posted_at__gte=since - lookback).values("account_id")
        clients |= set(
            Account.objects.filter(pk__in=touched, client__isnull=False).values_list("client_id", flat=True)
        )
    return sorted(clients)


# --- PostgreSQL: set-based ------------------------------------------------------------------------

VALUATION_SQL = """
CREATE TEMP TABLE sweep_result ON COMMIT DROP AS
WITH scope AS (
    SELECT f.id AS facility_id, f.client_id, f.principal_account_id, f.interest_account_id, f.fees_account_id,
           COALESCE(f.policy_id, %(default_policy)s) AS policy_id
      FROM financing_facility f
     WHERE f.status <> 'closed' {client_filter}
),
positions AS (
    SELECT p.client_id,
           ROUND(b.amount * u.unit_value, 2) AS mv,
           u.haircut, u.concentration_limit, u.eligible
      FROM collateral_collateralpool p
      JOIN ledger_balance b ON b.account_id = p.account_id AND b.amount <> 0
      JOIN sweep_units u ON u.symbol = b.instrument_id AND u.unit_value IS NOT NULL
     WHERE p.client_id IN (SELECT client_id FROM scope)
),
pool_totals AS (
    SELECT client_id, SUM(mv) AS market_value FROM positions GROUP BY client_id
),
pool_values AS (
    SELECT pos.client_id, t.market_value,
           SUM(CASE WHEN pos.eligible THEN
                   FLOOR(LEAST(pos.mv, COALESCE(pos.concentration_limit * t.market_value, pos.mv))
                         * (1 - pos.haircut) * 100) / 100
               ELSE 0 END) AS margin_value
      FROM positions pos JOIN pool_totals t ON t.client_id = pos.client_id
     GROUP BY pos.client_id, t.market_value
),
valued AS (
    SELECT s.facility_id, s.policy_id,
           COALESCE(v.market_value, 0)::numeric(20, 2) AS market_value,
           GREATEST(COALESCE(v.margin_value, 0), 0)::numeric(20, 2) AS margin_value,
           (COALESCE(bp.amount, 0) + COALESCE(bi.amount, 0) + COALESCE(bf.amount, 0))::numeric(20, 2) AS debt
      FROM scope s
      LEFT JOIN pool_values v ON v.client_id = s.client_id
      LEFT JOIN ledger_balance bp ON bp.account_id = s.principal_account_id AND bp.instrument_id = 'HKD'
      LEFT JOIN ledger_balance bi ON bi.account_id = s.interest_account_id AND bi.instrument_id = 'HKD'
      LEFT JOIN ledger_balance bf ON bf.account_id = s.fees_account_id AND bf.instrument_id = 'HKD'
)
SELECT v.facility_id, v.market_value, v.margin_value, v.debt,
       CASE WHEN v.debt <= 0 THEN 0
            WHEN v.margin_value <= 0 THEN NULL
            ELSE ROUND(v.debt::numeric(40, 20) / v.margin_value, 8) END AS margin_ratio,
       CASE WHEN v.debt <= 0 THEN 'no_debt'
            WHEN v.debt >= p.forced_sale * v.margin_value THEN 'forced_sale'
            WHEN v.debt > p.margin_call * v.margin_value THEN 'margin_call'
            WHEN v.debt >= p.warning * v.margin_value THEN 'warning'
            ELSE 'ok' END AS status
  FROM valued v JOIN financing_marginpolicy p ON p.id = v.policy_id
"""

WRITE_SQL = """
WITH changed AS (
    SELECT r.*, s.facility_id IS NULL AS is_new, s.status AS old_status, s.margin_ratio AS old_ratio
      FROM sweep_result r
      LEFT JOIN financing_marginstate s ON s.facility_id = r.facility_id
     WHERE s.facility_id IS NULL
        OR s.margin_ratio IS DISTINCT FROM r.margin_ratio
        OR s.status <> r.status
        OR s.market_value <> r.market_value
        OR s.margin_value <> r.margin_value
        OR s.debt <> r.debt
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
SELECT (SELECT COUNT(*) FROM sweep_result),
       (SELECT COUNT(*) FROM updated) + (SELECT COUNT(*) FROM inserted),
       (SELECT COUNT(*) FROM snapshots)
"""


def _value_into_temp_table(cursor, clients: list[int] | None) -> None:
    """Value the facilities of ``clients`` (everybody when None) into the temporary table ``sweep_result``."""
    units = asset_units()
    # ON COMMIT DROP cleans up after a committed sweep; an enclosing transaction (a test, a caller that
    # sweeps twice, the ladder after the sweep) keeps them, hence the explicit drop.
    cursor.execute("DROP TABLE IF EXISTS pg_temp.sweep_units, pg_temp.sweep_result")
    cursor.execute(
        "CREATE TEMP TABLE sweep_units (symbol varchar(20) PRIMARY KEY, unit_value numeric, haircut numeric, "
        "concentration_limit numeric, eligible boolean) ON COMMIT DROP"
    )
    if units:
        cursor.executemany(
            "INSERT INTO sweep_units VALUES (%s, %s, %s, %s, %s)",
            [(u.symbol, u.unit_value, u.haircut, u.concentration_limit, u.eligible) for u in units],
        )
    client_filter = ""
    params: dict[str, object] = {"default_policy": default_policy().pk}
    if clients is not None:
        client_filter = "AND f.client_id = ANY(%(clients)s)"
        params["clients"] = clients
    cursor.execute(VALUATION_SQL.format(client_filter=client_filter), params)


def _sweep_postgresql(clients: list[int] | None, now: datetime.datetime) -> tuple[int, int, int]:
    with connection.cursor() as cursor:
        _value_into_temp_table(cursor, clients)
        cursor.execute(WRITE_SQL, {"now": now})
        valued, changed, snapshots = cursor.fetchone()
    return valued, changed, snapshots


Figures = tuple[int, Decimal, Decimal, Decimal, Decimal | None, str]


def valuations_of(clients: list[int]) -> dict[int, Figures]:
    """Live figures (facility id, market value, margin value, debt, ratio, status) of the open facilities
    of ``clients``: one statement on PostgreSQL, one bulk read and the pure calculations elsewhere."""
    if connection.vendor != "postgresql":
        return {row[0]: row for row in facility_figures(clients)}
    with connection.cursor() as cursor:
        _value_into_temp_table(cursor, clients)
        cursor.execute(
            "SELECT facility_id, market_value, margin_value, debt, margin_ratio, status FROM sweep_result"
        )
        rows = cursor.fetchall()
    return {row[0]: tuple(row) for row in rows}


# --- Any database: the same steps, valued in Python ------------------------------------------------


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
    run = SweepRun.objects.create(trigger=trigger, symbols=sorted(symbols) if symbols else [], started_at=now)
    with transaction.atomic():
        if clients is None:
            clients = _clients_in_scope(symbols, since)
        if connection.vendor == "postgresql":
            valued, changed, snapshots = _sweep_postgresql(clients, now)
        else:
            valued, changed, snapshots = _sweep_generic(clients, now)
    result = SweepResult(
        run=run, facilities_valued=valued, states_changed=changed, snapshots_written=snapshots
    )
    if ladder:
        result.ladder_actions = ladder_run()
    run.finished_at = timezone.now()
    run.facilities_valued, run.states_changed = valued, changed
    run.snapshots_written, run.ladder_actions = snapshots, result.ladder_actions
    run.duration_ms = int((time.perf_counter() - started) * 1000)
    run.save(
        update_fields=[
            "finished_at",
            "facilities_valued",
            "states_changed",
            "snapshots_written",
            "ladder_actions",
            "duration_ms",
        ]
    )
    return result
