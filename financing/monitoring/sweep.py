"""The margin sweep: revalue the pools in scope in a few set-based statements (``sweep.sql``) and keep each
facility's margin state and a ratio snapshot when its figures move by more than a step or cross a threshold.
How and why: docs/monitoring.md."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from collateral.calculations import PositionInput, margin_ratio, pool_valuation
from collateral.enums import AssetKind
from collateral.models import Asset
from collateral.selectors import current_prices, fx_to_hkd
from core.sql import sql_compose, sql_file
from financing.calculations import (
    FacilityFigures,
    MarginFigures,
    Thresholds,
    figures_worth_writing,
    margin_status,
    snapshot_worth_taking,
)
from financing.enums import FacilityStatus, SweepScope
from financing.locks import sweep_lock
from financing.models import Facility, MarginPolicy, MarginState, RatioSnapshot, SweepRun
from financing.monitoring.totals import AT_RISK_STATUSES, NEAR_WARNING, firm_totals_record
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
    crypto: bool = False


@dataclass
class SweepResult:
    run: SweepRun
    facilities_valued: int = 0
    states_changed: int = 0
    snapshots_written: int = 0
    ladder_actions: int = 0
    fixed_parts_stored: int = 0  # pools' fixed parts worked out anew and stored (PostgreSQL only)
    status_changes: dict[str, int] | None = None  # states gained (lost: negative) by each margin status
    principal_change: Decimal = Decimal(0)  # the change in the principal the margin states hold
    listed_change: int | None = None  # states that came onto the console's at-risk list, less those that left
    started: float = 0.0  # ``time.perf_counter()`` when the run began


def asset_units(*, prices: dict | None = None, fx: dict[str, Decimal] | None = None) -> list[AssetUnit]:
    """Every asset's HKD unit value and terms, at the current prices and FX rates, or at ``prices`` (symbol →
    ``Quote``) and ``fx`` (currency → HKD) when given: a stress test values the book at shocked ones."""
    prices = current_prices() if prices is None else prices
    fx = fx_to_hkd() if fx is None else fx
    units = []
    terms = Asset.objects.values_list(
        "instrument_id", "kind", "currency", "haircut", "concentration_limit", "eligible"
    )  # values, not model instances: every sweep reads every asset
    for symbol, kind, asset_currency, haircut, concentration_limit, eligible in terms:
        if kind == AssetKind.CASH:
            price, currency = Decimal(1), asset_currency
        else:
            quote = prices.get(symbol)
            price, currency = (quote.price, quote.currency) if quote else (None, asset_currency)
        rate = fx.get(currency)
        unit_value = price * rate if price is not None and rate is not None else None
        units.append(
            AssetUnit(
                symbol, unit_value, haircut, concentration_limit, eligible, crypto=kind == AssetKind.CRYPTO
            )
        )
    return units


# Bumped whenever what a pool's fixed part holds, or how it is worked out, changes: no stored part then
# matches, and the next sweep values every pool from its positions (and stores the new parts).
FIXED_PART_VERSION = 2  # 2: cents kept past about HK$10^16 (a part worked out with "/ 100" may lack them)


def fixed_basis(units: list[AssetUnit]) -> str:
    """The fingerprint of everything a pool's fixed part (``MarginState.fixed_*``) depends on: which assets are
    crypto and whether each has a price, and the unit value, haircut, concentration limit and eligibility of
    every other asset. A new security price, FX rate or term changes it, and every pool is then valued from
    its positions again."""
    terms = sorted(
        (u.symbol, "crypto", u.unit_value is None) if u.crypto
        else (u.symbol, str(u.unit_value), str(u.haircut), str(u.concentration_limit), u.eligible)
        for u in units
    )  # fmt: skip
    return hashlib.sha256(repr((FIXED_PART_VERSION, terms)).encode()).hexdigest()


def _piece(name: str) -> str:
    return sql_file(__file__, "sweep.sql", name)


def _crypto_params(units: list[AssetUnit]) -> tuple[tuple, dict[str, object]]:
    """The crypto assets with a price as the statement's text depends on them (``_valuation_statement``'s key:
    whether each is eligible, whether limited), and their values as the statement's parameters."""
    crypto = [u for u in units if u.crypto and u.unit_value is not None]
    key = tuple((u.eligible, u.concentration_limit is not None) for u in crypto)
    params = {}
    for i, unit in enumerate(crypto):
        params |= {f"crypto_{i}_symbol": unit.symbol, f"crypto_{i}_unit": unit.unit_value,
                   f"crypto_{i}_haircut": unit.haircut, f"crypto_{i}_limit": unit.concentration_limit}  # fmt: skip
    return key, params


def _crypto_slots(key: tuple) -> dict[str, sql.Composable]:
    """The valuation's slots that value a pool's crypto from the quantities its fixed part holds and the
    current unit values, haircuts and limits, rounded position by position as the valuation from the ledger
    rounds: each crypto's market value as a column, their sum, their margin value, and whether no
    concentration cut applies to any of them."""
    columns, market, margin, uncapped = [], [sql.SQL("0")], [sql.SQL("0")], [sql.SQL("true")]
    for i, (eligible, limited) in enumerate(key):
        name = sql.Identifier(f"crypto_{i}")
        columns.append(
            sql.SQL(_piece("crypto.column")).format(
                name=name,
                symbol=sql.Placeholder(f"crypto_{i}_symbol"),
                unit=sql.Placeholder(f"crypto_{i}_unit"),
            )
        )
        market.append(name)
        if eligible:
            margin.append(
                sql.SQL(_piece("crypto.margin")).format(
                    name=name, haircut=sql.Placeholder(f"crypto_{i}_haircut")
                )
            )
        if limited:
            uncapped.append(
                sql.SQL(_piece("crypto.uncapped")).format(
                    name=name, limit=sql.Placeholder(f"crypto_{i}_limit")
                )
            )
    return {
        "crypto_columns": sql.SQL("").join(sql.SQL(", ") + column for column in columns),
        "crypto_market": sql.SQL(" + ").join(market),
        "crypto_margin": sql.SQL(" + ").join(margin),
        "crypto_uncapped": sql.SQL(" AND ").join(uncapped),
    }


def previous_sweep_start() -> datetime.datetime | None:
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


def _holders(symbols: str) -> sql.Composable:
    return sql.SQL(_piece("holders")).format(symbols=sql.Placeholder(symbols))


@functools.cache
def _scope_statement(scope: str) -> str:
    """The statement that fills the scope table for a run of ``scope`` (``SweepScope``)."""
    posted = _piece(f"posted.{scope}")
    return sql_compose(
        _piece("scope"),
        touched=_piece("touched") if scope != SweepScope.CLIENTS else "",
        posted=posted,
        known_debt=sql.SQL(_piece(f"known_debt.{scope}")).format(posted=sql.SQL(posted)),
        fast_candidates_apart=_piece(f"fast_candidates_apart.{scope}"),
        state_filter=sql.SQL(_piece(f"state_filter.{scope}")).format(
            holders_of_moved_crypto=_holders("moved_crypto"), holders_of_moved_other=_holders("moved_other")
        ),
        new_filter=_piece(f"new_filter.{scope}"),
    )


@functools.cache
def _valuation_statement(
    statement: str, crypto: tuple, price_driven: bool, outer: str = "", book: bool = False
) -> str:
    """``statement`` ("sweep": value and write; "valuations": value only) for the crypto assets ``crypto``
    (``_crypto_params``); only a price-driven sweep, and the whole book valued from the fixed parts (``book``,
    ``valuation_of_book_run``), value pools from their fixed parts. ``outer``: the text of a statement of the
    caller's with a ``{valuation}`` slot, run instead of ``statement`` (value only)."""
    source = "price_driven" if price_driven or book else "other"
    if statement == "sweep":
        fixed_columns, fixed_join = _piece("fixed.sweep_columns"), "\n      " + _piece("fixed.sweep_join")
    else:
        fixed_columns, fixed_join = _piece("fixed.valuation_columns"), ""
    valuation = sql.SQL(_piece("valuation")).format(
        **_crypto_slots(crypto),
        fast_source=sql.SQL(_piece("fast_source.book" if book else f"fast_source.{source}")).format(
            holders_of_moved_other=_holders("moved_other")
        ),
        positions_from=sql.SQL(_piece(f"positions_from.{source}")),
        pool_accounts=sql.SQL(_piece(f"pool_accounts.{source}")),
        fixed_columns=sql.SQL(fixed_columns),
        fixed_join=sql.SQL(fixed_join),
    )
    return sql_compose(outer or _piece(statement), valuation=valuation)


def _scope_table(cursor, scope: str, params: dict[str, object]) -> None:
    cursor.execute(_piece("scope_drop"))
    cursor.execute(_scope_statement(scope), params)
    cursor.execute(_piece("scope_statistics"))
    cursor.execute(_piece("scope_analyze"))


# Sorting and hashing a whole book fits in memory with this; PostgreSQL's default (4 MB) spills to disk.
SWEEP_WORK_MEM = "128MB"
# The columns of the unit values' temporary table (``AssetUnit``'s fields).
SWEEP_UNIT_COLUMNS = ["symbol", "unit_value", "haircut", "concentration_limit", "eligible", "crypto"]


def _prepare(
    cursor, scope: str, params: dict[str, object], units: list[AssetUnit] | None = None
) -> tuple[dict[str, object], tuple]:
    """Load the per-asset unit values (``units``, or the current ones) and the facilities in scope into
    temporary tables; return the statement's parameters and the crypto assets its text is composed for
    (``_crypto_params``)."""
    units = asset_units() if units is None else units
    cursor.execute(sql_compose(_piece("work_mem"), work_mem=sql.Literal(SWEEP_WORK_MEM)))
    cursor.execute(_piece("no_jit"))
    cursor.execute(_piece("units_drop"))
    cursor.execute(_piece("units_create"))
    if units:  # one statement, a column per array (not a round trip per asset)
        cursor.execute(
            _piece("units_insert"),
            {name: [getattr(u, name) for u in units] for name in SWEEP_UNIT_COLUMNS},
        )
    default = default_policy()
    crypto = {u.symbol for u in units if u.crypto}
    moved = params.get("symbols") or []
    params = {
        "default_warning": default.warning,
        "default_margin_call": default.margin_call,
        "default_forced_sale": default.forced_sale,
        "default_target": default.target,
        "basis": fixed_basis(units),
        "moved_crypto": [symbol for symbol in moved if symbol in crypto],
        "moved_other": [symbol for symbol in moved if symbol not in crypto],
        **params,
    }
    _scope_table(cursor, scope, params)
    crypto_key, crypto_params = _crypto_params(units)
    return {**params, **crypto_params}, crypto_key


def _scope(clients: list[int] | None, symbols: list[str] | None, since: datetime.datetime | None):
    if clients is not None:
        return SweepScope.CLIENTS, {"clients": clients}
    if symbols is None:
        return SweepScope.ALL, {"since": posted_since(since)}
    return SweepScope.MOVED, {"symbols": symbols, "since": posted_since(since)}


def _sweep_postgresql(
    clients: list[int] | None,
    symbols: list[str] | None,
    since: datetime.datetime | None,
    now: datetime.datetime,
) -> tuple[int, int, int, int, int, dict[str, int], Decimal, int, int]:
    """Valued, changed, snapshots written, valued from a fixed part, fixed parts stored, the states gained and
    lost by each status, the change in principal and in the states on the at-risk list, and the milliseconds
    spent finding the scope."""
    scope, params = _scope(clients, symbols, since)
    with connection.cursor() as cursor:
        sweep_lock()
        started = time.perf_counter()
        params, crypto = _prepare(cursor, scope, {**params, **_write_rule(now), "near_warning": NEAR_WARNING})
        scope_ms = _ms_since(started)
        cursor.execute(_valuation_statement("sweep", crypto, scope == SweepScope.MOVED), params)
        *counts, status_changes, listed_change = cursor.fetchone()
        if isinstance(status_changes, str):  # Django has psycopg hand JSON over as text
            status_changes = json.loads(status_changes)
        cursor.execute(_piece("principal"))
        (principal_change,) = cursor.fetchone()
        return (*counts, status_changes, principal_change, int(listed_change), scope_ms)


def _write_rule(now: datetime.datetime) -> dict[str, object]:
    """The write rule's parameters (``figures_worth_writing``): the ratio's step, and the moment before which
    a state is old enough for any change to be written."""
    return {
        "now": now,
        "ratio_step": settings.SWEEP_RATIO_STEP,
        "stale_before": now - datetime.timedelta(seconds=settings.SWEEP_WRITE_INTERVAL_SECONDS),
    }


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def valuations_of(clients: list[int]) -> dict[int, FacilityFigures]:
    """Live figures of the open facilities of ``clients``, by facility: one statement on PostgreSQL, one bulk
    read and the pure calculations elsewhere."""
    if connection.vendor != "postgresql":
        return {row.facility_id: row for row in facility_figures(clients)}
    with connection.cursor() as cursor:
        params, crypto = _prepare(cursor, SweepScope.CLIENTS, {"clients": clients})
        cursor.execute(_valuation_statement("valuations", crypto, False), params)
        rows = cursor.fetchall()
    return {row[0]: FacilityFigures(*row) for row in rows}


# The scopes of ``valuation_of_book_run`` (never a ``SweepRun``'s): every open facility, the pools whose stored
# fixed part holds valued from it as a price-driven sweep values them (``BOOK``), or every pool from its
# positions (``BOOK_POSITIONS``); in both, a debt is the margin state's unless the client was posted to since
# the previous sweep, and a facility opened since then is new.
BOOK = "book"
BOOK_POSITIONS = "book_positions"


def _on_the_live_basis(units: list[AssetUnit]) -> list[AssetUnit] | None:
    """``units`` with every asset but the crypto taken from the live unit values when each is the same number
    there (a shock of the crypto alone), so that their fingerprint (``fixed_basis``) is the one the sweeps
    store the fixed parts on; None when any differs (a shocked security or FX rate: no fixed part holds)."""
    live = {u.symbol: u for u in asset_units()}
    same = []
    for unit in units:
        if unit.crypto:
            same.append(unit)
            continue
        other = live.get(unit.symbol)
        if other is None or other.crypto or (other.unit_value is None) != (unit.unit_value is None):
            return None
        if (other.unit_value, other.haircut, other.concentration_limit, other.eligible) != (
            unit.unit_value,
            unit.haircut,
            unit.concentration_limit,
            unit.eligible,
        ):
            return None
        same.append(other)
    if {u.symbol for u in same} != set(live):
        return None
    return same


def valuation_of_book_run(outer: str, *, units: list[AssetUnit], params: dict[str, object]) -> list[tuple]:
    """Run ``outer`` — a statement of the caller's, ``WITH {valuation}`` and then a query over the CTE
    ``result`` (``facility_id, policy_id, old_*`` (the margin state), ``debt, market_value, margin_value,
    margin_ratio, status``) — on every open facility valued at ``units`` (PostgreSQL only). The sweep's own
    valuation, read-only: it writes only temporary tables and whatever ``outer`` writes. Returns the rows
    ``outer`` returns (none: empty). The stress test values the book at shocked prices with it (oversight).

    When ``units`` differ from the live ones in the crypto only, every pool whose stored fixed part holds is
    valued from it as a price-driven sweep values it (the clients posted to since the previous sweep, the
    parts on another basis and the pools a concentration cut now reaches from their positions), with the
    sweeps' lock shared until the caller's transaction ends, so that no sweep stores states and parts
    between the statements that read them. Otherwise every pool is valued from its positions, the debts read
    the same way (a margin state's unless its client was posted to)."""
    live_basis = _on_the_live_basis(units)
    with connection.cursor() as cursor:
        sweep_lock(shared=True)
        since = posted_since(previous_sweep_start())
        if live_basis is None:
            full, crypto = _prepare(cursor, BOOK_POSITIONS, {"since": since}, units)
            statement = _valuation_statement("valuations", crypto, False, outer)
        else:
            full, crypto = _prepare(cursor, BOOK, {"since": since}, live_basis)
            statement = _valuation_statement("valuations", crypto, False, outer, book=True)
        cursor.execute(statement, {**full, **params})
        return cursor.fetchall() if cursor.description else []


def facility_figures(
    clients: list[int] | None, units: list[AssetUnit] | None = None
) -> list[FacilityFigures]:
    """(facility id, market value, margin value, debt, ratio, status) for every open facility in scope,
    computed with ``collateral.calculations`` from one bulk read of the balances, at the current unit values
    or at ``units``."""
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
    units = {u.symbol: u for u in (asset_units() if units is None else units)}
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
            FacilityFigures(
                facility.pk,
                valuation.market_value,
                valuation.margin_value,
                debt,
                margin_ratio(debt, valuation.margin_value),
                str(margin_status(debt, valuation.margin_value, thresholds)),
            )
        )
    return results


def _principals(facility_ids: list[int]) -> dict[int, Decimal]:
    """The outstanding principal of each facility, from the ledger."""
    accounts = dict(Facility.objects.filter(pk__in=facility_ids).values_list("principal_account_id", "pk"))
    balances = Balance.objects.filter(account_id__in=list(accounts), instrument_id="HKD")
    principal = dict.fromkeys(facility_ids, Decimal("0.00"))
    for account_id, amount in balances.values_list("account_id", "amount"):
        principal[accounts[account_id]] = amount.quantize(Decimal("0.01"))
    return principal


def _crypto_held(facility_ids: list[int]) -> dict[int, dict[str, str]]:
    """The crypto each facility's pool holds, by symbol, as the SQL sweep keeps it in ``fixed_crypto``."""
    pools = dict(
        Facility.objects.filter(pk__in=facility_ids, client__collateral_pool__isnull=False).values_list(
            "client__collateral_pool__account_id", "pk"
        )
    )
    held: dict[int, dict[str, str]] = {facility_id: {} for facility_id in facility_ids}
    balances = Balance.objects.filter(account_id__in=list(pools), instrument__asset__kind=AssetKind.CRYPTO)
    for account_id, symbol, amount in balances.exclude(amount=0).values_list(
        "account_id", "instrument_id", "amount"
    ):
        held[pools[account_id]][symbol] = str(amount)
    return held


def _sweep_generic(
    clients: list[int] | None, now: datetime.datetime
) -> tuple[int, int, int, dict[str, int], Decimal, int]:
    """Valued, changed, snapshots written, the states gained and lost by each status, the change in principal
    and in the states on the at-risk list (what ``_sweep_postgresql`` returns of them)."""
    figures = facility_figures(clients)
    states = {
        s.facility_id: s for s in MarginState.objects.filter(facility_id__in=[f.facility_id for f in figures])
    }
    principals = _principals([f.facility_id for f in figures])
    crypto = _crypto_held([f.facility_id for f in figures])
    status_changes: dict[str, int] = defaultdict(int)
    principal_change = Decimal(0)
    listed_change = 0
    holdings_moved = []  # the principal or the crypto held changed: stored whatever the write rule says
    policies = dict(
        Facility.objects.filter(
            pk__in=[f.facility_id for f in figures if f.facility_id not in states]
        ).values_list("pk", "policy_id")
    )
    default = default_policy()
    targets = dict(MarginPolicy.objects.values_list("pk", "target"))
    warnings = dict(MarginPolicy.objects.values_list("pk", "warning"))

    def listed(status: str, ratio: Decimal | None, policy_id: int | None) -> bool:
        """On the console's at-risk list (``financing.monitoring.totals.on_the_at_risk_list``)."""
        warning = warnings.get(policy_id, default.warning)
        near = status == "ok" and ratio is not None and ratio >= warning - NEAR_WARNING
        return status in AT_RISK_STATUSES or near

    rule = _write_rule(now)
    snapshots, updates, inserts = [], [], []
    for facility_id, market_value, margin_value, debt, ratio, status in figures:
        state = states.get(facility_id)
        if state is None:
            notified = status if status in ("no_debt", "ok") else "ok"
            inserts.append(
                MarginState(
                    facility_id=facility_id, market_value=market_value, margin_value=margin_value, debt=debt,
                    margin_ratio=ratio, status=status, notified_status=notified, valued_at=now, status_since=now,
                    policy_id=policies[facility_id], principal=principals[facility_id], fixed_crypto=crypto[facility_id],
                )
            )  # fmt: skip
            status_changes[status] += 1
            principal_change += principals[facility_id]
            listed_change += listed(status, ratio, policies[facility_id])
            snapshots.append(RatioSnapshot(facility_id=facility_id, taken_at=now, market_value=market_value,
                                           margin_value=margin_value, debt=debt, margin_ratio=ratio, status=status))  # fmt: skip
            continue
        if state.principal != principals[facility_id] or state.fixed_crypto != crypto[facility_id]:
            principal_change += principals[facility_id] - state.principal
            state.principal, state.fixed_crypto = principals[facility_id], crypto[facility_id]
            holdings_moved.append(state)
        before = MarginFigures(
            state.market_value, state.margin_value, state.debt, state.margin_ratio, state.status
        )
        after = MarginFigures(market_value, margin_value, debt, ratio, status)
        worth_writing = figures_worth_writing(
            before, after, target=targets.get(state.policy_id, default.target), step=rule["ratio_step"],
            written_at=state.valued_at, stale_before=rule["stale_before"],
        )  # fmt: skip
        if not worth_writing:
            continue
        if snapshot_worth_taking(before, after):
            snapshots.append(RatioSnapshot(facility_id=facility_id, taken_at=now, market_value=market_value,
                                           margin_value=margin_value, debt=debt, margin_ratio=ratio, status=status))  # fmt: skip
        if state.status != status:
            state.status_since = now
            status_changes[state.status] -= 1
            status_changes[status] += 1
        listed_change += listed(status, ratio, state.policy_id) - listed(
            state.status, state.margin_ratio, state.policy_id
        )
        state.market_value, state.margin_value, state.debt = market_value, margin_value, debt
        state.margin_ratio, state.status, state.valued_at = ratio, status, now
        updates.append(state)
    MarginState.objects.bulk_create(inserts)
    MarginState.objects.bulk_update(
        updates,
        ["market_value", "margin_value", "debt", "margin_ratio", "status", "valued_at", "status_since"],
    )
    MarginState.objects.bulk_update(holdings_moved, ["principal", "fixed_crypto"])
    RatioSnapshot.objects.bulk_create(snapshots)
    changes = {status: n for status, n in status_changes.items() if n}
    return len(figures), len(inserts) + len(updates), len(snapshots), changes, principal_change, listed_change


def sweep_value(
    *, symbols: list[str] | None = None, clients: list[int] | None = None, trigger: str = "full"
) -> SweepResult:
    """Revalue the facilities in scope and store the margin states and snapshots that changed, in one
    transaction. Scope: the given ``clients``; or the holders of ``symbols`` (and clients posted to since the
    last sweep); or, with neither, everybody. The run stays open until ``sweep_finish``."""
    started = time.perf_counter()
    now = timezone.now()
    since = previous_sweep_start()
    run = SweepRun.objects.create(
        trigger=trigger,
        scope=_scope(clients, symbols, since)[0],
        symbols=sorted(symbols) if symbols else [],
        started_at=now,
    )
    parts_stored = 0
    with transaction.atomic():
        scope_started = time.perf_counter()
        if connection.vendor == "postgresql":
            (valued, changed, snapshots, run.valued_from_fixed_part, parts_stored, status_changes,
             principal_change, listed_change, run.scope_ms) = _sweep_postgresql(clients, symbols, since, now)  # fmt: skip
        else:
            if clients is None:
                clients = _clients_in_scope(symbols, since)
            run.scope_ms = _ms_since(scope_started)
            valued, changed, snapshots, status_changes, principal_change, listed_change = _sweep_generic(
                clients, now
            )
        firm_totals_record(
            run, status_changes=status_changes, principal_change=principal_change, listed_change=listed_change
        )
    return SweepResult(
        run=run,
        facilities_valued=valued,
        states_changed=changed,
        snapshots_written=snapshots,
        fixed_parts_stored=parts_stored,
        status_changes=status_changes,
        principal_change=principal_change,
        listed_change=listed_change,
        started=started,
    )


def sweep_finish(result: SweepResult, *, ladder_actions: int = 0, ladder_ms: int = 0) -> SweepResult:
    """Record the run as finished, with what the ladder did after it (nothing, for a sweep alone)."""
    run = result.run
    result.ladder_actions = ladder_actions
    run.ladder_ms = ladder_ms
    run.finished_at = timezone.now()
    run.facilities_valued, run.states_changed = result.facilities_valued, result.states_changed
    run.snapshots_written, run.ladder_actions = result.snapshots_written, ladder_actions
    run.duration_ms = _ms_since(result.started)
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
            "valued_from_fixed_part",
        ]
    )
    return result


def sweep_run(
    *, symbols: list[str] | None = None, clients: list[int] | None = None, trigger: str = "full"
) -> SweepResult:
    """A sweep on its own: revalue and store, act on nothing (``monitoring_cycle_run`` acts too)."""
    return sweep_finish(sweep_value(symbols=symbols, clients=clients, trigger=trigger))
