"""The margin sweep: revalue pools after prices move, keep each facility's margin state, and write a
ratio snapshot whenever the ratio moves.

It is set-based. On PostgreSQL it takes three steps, whatever the size of the book: the per-asset HKD unit
values (price × FX) and haircuts go into a temporary table (a few hundred rows, computed in Python from the
current prices); one statement puts the facilities in scope into a second temporary table, each with its
policy, its previous margin state and its debt (in a price-driven sweep, all but those a fixed part may value,
which the valuation reads from their margin states); and one statement with data-modifying CTEs
values every position behind them (market value, margin value with haircuts and concentration cuts, ratio
and status) and writes the snapshots and the margin states that changed. The rounding is the same as
``collateral.calculations`` (market value half-up to the cent, margin value down to the cent); the tests
check the two agree. On other databases (the embedded SQLite demo) the same steps run with the valuation
done in Python from one bulk read of the balances.

When only some assets moved, only pools holding them are revalued, together with any client whose ledger
accounts were posted to since the previous sweep (deposits, drawdowns, interest); only those clients'
debts are read from the ledger, the others' are the margin state's (only postings change a debt). Running
it twice on the same prices writes nothing the second time.

After a crypto move most pools in scope are not even valued position by position. Each pool's fixed part
(``MarginState.fixed_*``: what a crypto price leaves as it is: the value of everything else, the pool value from
which no concentration cut applies to it, and the crypto quantities) is stored when the pool is valued from
its positions; a price-driven sweep values a pool from it and the new crypto prices (the same rounding,
position by position) when its holdings have not moved since the previous sweep (nothing was posted to the
client, and its facility is not new to the sweeps), the part was worked out on the current prices, FX rates
and terms of every other asset (``fixed_basis``), and no cut applies at the new prices. Every other pool is
valued from its positions. Any sweep works the part out again for the pools whose part may be out of date
(holdings moved, another basis, none yet); the full sweep (every minute by default) values every pool from
its positions, so its margin states never rest on a part."""

from __future__ import annotations

import datetime
import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from collateral.calculations import PositionInput, margin_ratio, pool_valuation
from collateral.enums import AssetKind
from collateral.models import Asset
from collateral.selectors import current_prices, fx_to_hkd
from financing.calculations import Thresholds, margin_status
from financing.enums import FacilityStatus, SweepScope
from financing.locks import sweep_lock
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
    crypto: bool = False


@dataclass
class SweepResult:
    run: SweepRun
    facilities_valued: int = 0
    states_changed: int = 0
    snapshots_written: int = 0
    ladder_actions: int = 0
    fixed_parts_stored: int = 0  # pools' fixed parts worked out anew and stored (PostgreSQL only)
    started: float = 0.0  # ``time.perf_counter()`` when the run began


def asset_units() -> list[AssetUnit]:
    prices = current_prices()
    fx = fx_to_hkd()
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


def _crypto_sql(units: list[AssetUnit]) -> tuple[dict[str, str], dict[str, object]]:
    """The pieces of the valuation statement that value a pool's crypto from the quantities its fixed part
    holds (``fixed_crypto``) and the current unit values, haircuts and limits (statement parameters), with the
    same rounding, position by position, as the valuation from the ledger: each crypto's market value as a
    column, their sum, their margin value, and whether no concentration cut applies to any of them."""
    columns, names, market, margin, uncapped, params = [], [], ["0"], ["0"], ["true"], {}
    for i, unit in enumerate(u for u in units if u.crypto and u.unit_value is not None):
        name = f"crypto_{i}"
        columns.append(
            f",\n           ROUND(COALESCE((s.fixed_crypto ->> %({name}_symbol)s)::numeric, 0) * %({name}_unit)s, 2) AS {name}"
        )
        names.append(f", {name}")
        market.append(name)
        if unit.eligible:
            margin.append(f"FLOOR({name} * (1 - %({name}_haircut)s) * 100) * 0.01")
        if unit.concentration_limit is not None:
            uncapped.append(f"{name} <= %({name}_limit)s * market_value")
        params |= {f"{name}_symbol": unit.symbol, f"{name}_unit": unit.unit_value,
                   f"{name}_haircut": unit.haircut, f"{name}_limit": unit.concentration_limit}  # fmt: skip
    pieces = {
        "crypto_columns": "".join(columns),
        "crypto_names": "".join(names),
        "crypto_market": " + ".join(market),
        "crypto_margin": " + ".join(margin),
        "crypto_uncapped": " AND ".join(uncapped),
    }
    return pieces, params


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


# Clients whose ledger accounts were posted to since a moment, and their facilities (not in a run for given
# clients, which takes its clients as posted to).
TOUCHED_CTE = """WITH touched AS MATERIALIZED (
    SELECT DISTINCT a.client_id FROM ledger_transaction t
      JOIN ledger_leg l ON l.transaction_id = t.id
      JOIN ledger_account a ON a.id = l.account_id
     WHERE t.posted_at >= %(since)s AND a.client_id IS NOT NULL
),
touched_facilities AS MATERIALIZED (
    SELECT f.id FROM financing_facility f WHERE f.client_id IN (SELECT client_id FROM touched)
)"""

# The facilities of the clients whose pools hold any of ``symbols`` (by the ledger's balances).
HOLDERS = """SELECT f.id FROM ledger_balance b
                JOIN collateral_collateralpool p ON p.account_id = b.account_id
                JOIN financing_facility f ON f.client_id = p.client_id
               WHERE b.instrument_id = ANY(%({symbols})s) AND b.amount <> 0"""

# Which margin states are in scope: every open facility's; those of given clients; or, in a price-driven
# sweep, those of the clients posted to and of the holders of the moved assets. A state whose fixed part
# was worked out on the current basis says which crypto its pool holds (its holdings have not moved unless
# its client was posted to), so the holders of a moved crypto are found in this table; the ledger is asked
# for the holders of anything else, and for the pools whose part may be out of date. Worked out inside the
# statement, so that a sweep never ships tens of thousands of ids back and forth.
STATE_FILTERS = {
    "all": "",
    "clients": "AND s.facility_id IN (SELECT f.id FROM financing_facility f WHERE f.client_id = ANY(%(clients)s))",
    "moved": f"""AND (s.facility_id IN (SELECT id FROM touched_facilities)
             OR (s.fixed_basis = %(basis)s AND s.fixed_crypto ?| %(moved_crypto)s::text[])
             OR (s.fixed_basis <> %(basis)s AND s.facility_id IN ({HOLDERS.format(symbols="moved_crypto")}))
             OR s.facility_id IN ({HOLDERS.format(symbols="moved_other")}))""",
}

# Facilities new to the sweeps (no margin state yet) in scope: every one, those of given clients, or those
# opened since the previous sweep (each is taken in by the first price-driven or full sweep after it opens).
NEW_FILTERS = {
    "all": "",
    "clients": "AND f.client_id = ANY(%(clients)s)",
    "moved": "AND f.created_at >= %(since)s",
}

# Whether the client was posted to since the previous sweep (a run for given clients takes them all as posted
# to): such a pool is never valued from its stored fixed part, and its part is worked out again.
POSTED = {
    "all": "s.facility_id IN (SELECT id FROM touched_facilities)",
    "clients": "true",
    "moved": "s.facility_id IN (SELECT id FROM touched_facilities)",
}

# A facility's debt changes only by postings to its loan accounts. In a price-driven sweep ("moved"), the
# debt the margin state holds is therefore still exact for every client nothing was posted to since the
# previous sweep (the same guarantee the scope relies on), and only the others' balances are read; the
# other scopes read every debt from the ledger.
KNOWN_DEBT = {
    "all": "NULL::numeric",
    "clients": "NULL::numeric",
    "moved": f"CASE WHEN NOT ({POSTED['moved']}) THEN s.debt END",
}

# In a price-driven sweep, the states whose pools a fixed part may value (worked out on the current basis, their
# client not posted to) are read by the valuation itself (``FAST_SOURCE``), and not copied into the scope: in
# the usual sweep after a crypto move that is nearly all of them, and the scope holds the few others. Those are
# found by the indexes, not by reading every state: "another basis" as two ranges either side of the current one
# (``margin_state_fixed_basis_idx``), then the facilities of the clients posted to; each state by its key, from
# one array of them (as a key lookup, also when they are many: after a new basis, or a posting to every client).
FAST_CANDIDATES_APART = {
    "all": "",
    "clients": "",
    "moved": """AND s.facility_id = ANY(ARRAY(
             SELECT o.facility_id FROM financing_marginstate o WHERE o.fixed_basis < %(basis)s OR o.fixed_basis > %(basis)s
             UNION ALL
             SELECT id FROM touched_facilities))""",
}

# The facilities in scope, into a temporary table: one row each, with its policy, its previous margin state,
# its pool's stored fixed part, whether its client was posted to, and its debt. A price-driven sweep reads the
# margin states alone (a facility's ledger balances only when its client was posted to); the facilities new
# to the sweeps come from ``financing_facility``. A table rather than a CTE because the planner knows its
# size, and picks hash joins for the tens of thousands of rows behind it.
SCOPE_SQL = """
CREATE TEMP TABLE sweep_scope ON COMMIT DROP AS {touched}
SELECT c.*, COALESCE(c.known_debt, (
           SELECT COALESCE(SUM(b.amount), 0) FROM financing_facility f
             JOIN ledger_balance b ON b.account_id IN (f.principal_account_id, f.interest_account_id,
                                                       f.fees_account_id)
            WHERE f.id = c.facility_id AND b.instrument_id = 'HKD'
       ))::numeric(20, 2) AS debt
  FROM (
    SELECT s.facility_id, s.policy_id, false AS is_new, s.status AS old_status, s.margin_ratio AS old_ratio,
           s.market_value AS old_market_value, s.margin_value AS old_margin_value, s.debt AS old_debt,
           {posted} AS posted, {known_debt} AS known_debt, s.fixed_basis = %(basis)s AS current,
           s.fixed_market_value, s.fixed_margin_value, s.fixed_uncapped_from, s.fixed_crypto
      FROM financing_marginstate s
     WHERE s.open {fast_candidates_apart} {state_filter}
    UNION ALL
    SELECT f.id, f.policy_id, true, NULL, NULL, NULL, NULL, NULL, true, NULL, false, NULL, NULL, NULL, NULL
      FROM financing_facility f
     WHERE f.status <> 'closed' {new_filter}
       AND NOT EXISTS (SELECT FROM financing_marginstate s WHERE s.facility_id = f.id)
  ) AS c
"""

# In a price-driven sweep, a pool whose holdings have not moved since the previous sweep, whose fixed part was
# worked out on the current basis, and to which no concentration cut applies at the new crypto prices, is
# valued from that part and its crypto (``fast_pools``). The holdings may have moved when the client was
# posted to, or when its facility is new to the sweeps: a pool is in no sweep's scope while its client has no
# open facility, and a new facility starts with no part. Every other pool is valued from its positions
# (``long_pools``: the pool of the facility's client): market value per position (half-up to the cent), the
# pool's total by a window, margin value with the concentration cut (down to the cent). Then ratio and status
# by the facility's policy: the same rules as collateral.calculations and financing.calculations.
VALUATION_CTES = """
-- (OFFSET 0: each crypto's value is worked out once, not wherever the statement uses it.)
fast_inputs AS (
    SELECT s.facility_id, s.policy_id, false AS is_new, s.status AS old_status, s.margin_ratio AS old_ratio,
           s.market_value AS old_market_value, s.margin_value AS old_margin_value, s.debt AS old_debt, s.debt,
           s.fixed_market_value, s.fixed_margin_value, s.fixed_uncapped_from AS uncapped_from{crypto_columns}
      FROM {fast_source}
    OFFSET 0
),
fast_values AS (
    SELECT f.*, fixed_market_value + {crypto_market} AS market_value, fixed_margin_value + {crypto_margin} AS margin_value
      FROM fast_inputs f
),
-- ``capped``: a concentration cut applies at the new crypto prices, and the pool is valued from its positions.
fast_pools AS MATERIALIZED (
    SELECT facility_id, policy_id, is_new, old_status, old_ratio, old_market_value, old_margin_value, old_debt, debt,
           market_value::numeric(20, 2) AS market_value, GREATEST(margin_value, 0)::numeric(20, 2) AS margin_value,
           ((uncapped_from IS NULL OR market_value >= uncapped_from) AND {crypto_uncapped}) IS NOT TRUE AS capped
      FROM fast_values
),
-- Every other pool is valued from its positions, each with what the valuation carries of its facility;
-- ``refresh``: its stored fixed part may be out of date (the holdings may have moved, or it was worked out on
-- another basis, or never), and is worked out again.
long_pools AS MATERIALIZED (
    SELECT s.*, p.account_id FROM (
        SELECT c.facility_id, c.policy_id, c.is_new, c.old_status, c.old_ratio, c.old_market_value, c.old_margin_value,
               c.old_debt, c.debt, c.current, c.fixed_market_value, c.fixed_margin_value, c.fixed_uncapped_from,
               c.fixed_crypto, c.posted OR c.is_new OR NOT c.current AS refresh
          FROM sweep_scope c
        UNION ALL
        -- A fast candidate that a concentration cut now reaches: its part is current (not worked out again).
        SELECT fp.facility_id, fp.policy_id, false, fp.old_status, fp.old_ratio, fp.old_market_value,
               fp.old_margin_value, fp.old_debt, fp.debt, true, NULL, NULL, NULL, NULL, false
          FROM fast_pools fp
         WHERE fp.capped
    ) AS s
      {pool_accounts}
),
position_values AS (
    SELECT lp.facility_id, lp.refresh, u.symbol, u.crypto, u.haircut, u.concentration_limit, u.eligible, b.amount,
           ROUND(b.amount * u.unit_value, 2) AS mv
      FROM {positions_from}
      JOIN sweep_units u ON u.symbol = b.instrument_id AND u.unit_value IS NOT NULL
),
positions AS (
    SELECT pv.*, SUM(pv.mv) OVER (PARTITION BY pv.facility_id) AS pool_mv FROM position_values pv
),
pool_values AS (
    SELECT facility_id, MAX(pool_mv) AS market_value,
           SUM(CASE WHEN eligible THEN
                   FLOOR(LEAST(mv, COALESCE(concentration_limit * pool_mv, mv)) * (1 - haircut) * 100) * 0.01
               ELSE 0 END) AS margin_value
      FROM positions GROUP BY facility_id
),
-- The fixed parts worked out again (``refresh``): from the positions, the values of everything but the crypto
-- (margin value without cuts), the pool market value from which no cut applies to any of it — for each position
-- with a limit, the least amount in cents that the limit times covers its value: an exact integer division —
-- and the crypto quantities; stored (``store``) where they differ from the stored ones (a pool with no positions
-- left gets an empty part). Only the sweep reads them (``_valuation_ctes``).
refreshed AS (
    SELECT facility_id, COALESCE(SUM(mv) FILTER (WHERE NOT crypto), 0) AS market_value,
           COALESCE(SUM(FLOOR(mv * (1 - haircut) * 100) * 0.01) FILTER (WHERE eligible AND NOT crypto), 0)
               AS margin_value,
           MAX(div(mv * 100, concentration_limit) + CASE WHEN mod(mv * 100, concentration_limit) > 0 THEN 1 ELSE 0 END)
               FILTER (WHERE eligible AND NOT crypto AND concentration_limit IS NOT NULL) * 0.01 AS uncapped_from,
           jsonb_object_agg(symbol, amount::text) FILTER (WHERE crypto) AS crypto
      FROM position_values WHERE refresh GROUP BY facility_id
),
new_fixed_parts AS (
    SELECT n.*, NOT n.current OR (n.old_market_value, n.old_margin_value, n.old_uncapped_from, n.old_crypto)
                                 IS DISTINCT FROM (n.market_value, n.margin_value, n.uncapped_from, n.crypto) AS store
      FROM (
        SELECT lp.facility_id, lp.current, lp.fixed_market_value AS old_market_value,
               lp.fixed_margin_value AS old_margin_value, lp.fixed_uncapped_from AS old_uncapped_from,
               lp.fixed_crypto AS old_crypto,
               COALESCE(r.market_value, 0)::numeric(20, 2) AS market_value,
               COALESCE(r.margin_value, 0)::numeric(20, 2) AS margin_value,
               r.uncapped_from::numeric(20, 2) AS uncapped_from, COALESCE(r.crypto, '{{}}'::jsonb) AS crypto
          FROM long_pools lp
          LEFT JOIN refreshed r ON r.facility_id = lp.facility_id
         WHERE lp.refresh
      ) AS n
),
-- Each pool valued, with its new fixed part where one is stored: none of those valued from their part.
valued AS (
    SELECT fp.facility_id, fp.policy_id, fp.is_new, fp.old_status, fp.old_ratio, fp.old_market_value,
           fp.old_margin_value, fp.old_debt, fp.debt, fp.market_value, fp.margin_value, false AS store,
           NULL::numeric(20, 2) AS fixed_market_value, NULL::numeric(20, 2) AS fixed_margin_value,
           NULL::numeric(20, 2) AS fixed_uncapped_from, NULL::jsonb AS fixed_crypto
      FROM fast_pools fp
     WHERE NOT fp.capped
    UNION ALL
    SELECT lp.facility_id, lp.policy_id, lp.is_new, lp.old_status, lp.old_ratio, lp.old_market_value,
           lp.old_margin_value, lp.old_debt, lp.debt, COALESCE(v.market_value, 0)::numeric(20, 2),
           GREATEST(COALESCE(v.margin_value, 0), 0)::numeric(20, 2), {fixed_columns}
      FROM long_pools lp
      LEFT JOIN pool_values v ON v.facility_id = lp.facility_id{fixed_join}
),
result AS (
    SELECT v.*,
           CASE WHEN v.debt <= 0 THEN 0
                WHEN v.margin_value <= 0 THEN NULL
                ELSE ROUND(v.debt::numeric(40, 20) / v.margin_value, 8) END AS margin_ratio,
           CASE WHEN v.debt <= 0 THEN 'no_debt'
                WHEN v.debt >= COALESCE(mp.forced_sale, %(default_forced_sale)s) * v.margin_value THEN 'forced_sale'
                WHEN v.debt > COALESCE(mp.margin_call, %(default_margin_call)s) * v.margin_value THEN 'margin_call'
                WHEN v.debt >= COALESCE(mp.warning, %(default_warning)s) * v.margin_value THEN 'warning'
                ELSE 'ok' END AS status
      FROM valued v
      LEFT JOIN financing_marginpolicy mp ON mp.id = v.policy_id
)"""


def _valuation_ctes(fixed_columns: str, fixed_join: str) -> str:
    """``VALUATION_CTES`` with what ``valued`` carries of the new fixed parts of the pools valued from their
    positions: the sweep stores them; a valuation alone leaves them (and never works them out)."""
    return VALUATION_CTES.replace("{fixed_columns}", fixed_columns).replace("{fixed_join}", fixed_join)


# One statement: value, then write the margin states and snapshots that changed, and the fixed parts stored anew.
SWEEP_SQL = (
    "WITH"
    + _valuation_ctes(
        "COALESCE(p.store, false), p.market_value, p.margin_value, p.uncapped_from, p.crypto",
        "\n      LEFT JOIN new_fixed_parts p ON p.facility_id = lp.facility_id",
    )
    + """,
-- What is written of each facility: its figures where they changed, its fixed part where it is stored anew.
writes AS MATERIALIZED (
    SELECT w.* FROM (
        SELECT r.facility_id, r.is_new, r.policy_id, r.market_value, r.margin_value, r.debt, r.margin_ratio, r.status,
               r.old_status, r.old_ratio,
               r.is_new OR r.old_ratio IS DISTINCT FROM r.margin_ratio OR r.old_status <> r.status
                   OR r.old_market_value <> r.market_value OR r.old_margin_value <> r.margin_value
                   OR r.old_debt <> r.debt AS changed,
               r.store, r.fixed_market_value, r.fixed_margin_value, r.fixed_uncapped_from, r.fixed_crypto
          FROM result r
    ) w
     WHERE w.changed OR w.store
),
snapshots AS (
    INSERT INTO financing_ratiosnapshot (facility_id, taken_at, market_value, margin_value, debt, margin_ratio, status)
    SELECT w.facility_id, %(now)s, w.market_value, w.margin_value, w.debt, w.margin_ratio, w.status
      FROM writes w
     WHERE w.changed AND (w.is_new OR w.margin_ratio IS DISTINCT FROM w.old_ratio OR w.status <> w.old_status)
    RETURNING 1
),
-- The figures of the states that changed (every state written but those whose part is stored anew): the update
-- sets nothing else, so that it reads nothing else of the 100,000 states it hashes to find them.
updated AS (
    UPDATE financing_marginstate s
       SET market_value = w.market_value, margin_value = w.margin_value, debt = w.debt,
           margin_ratio = w.margin_ratio, status = w.status, valued_at = %(now)s,
           status_since = CASE WHEN s.status <> w.status THEN %(now)s ELSE s.status_since END
      FROM writes w
     WHERE s.facility_id = w.facility_id AND NOT w.is_new AND NOT w.store
    RETURNING 1
),
-- The states whose part is stored anew (usually few: each found by its key), with their figures where they
-- changed.
stored AS (
    UPDATE financing_marginstate s
       SET market_value = w.market_value, margin_value = w.margin_value, debt = w.debt,
           margin_ratio = w.margin_ratio, status = w.status,
           valued_at = CASE WHEN w.changed THEN %(now)s ELSE s.valued_at END,
           status_since = CASE WHEN s.status <> w.status THEN %(now)s ELSE s.status_since END,
           fixed_basis = %(basis)s, fixed_market_value = w.fixed_market_value,
           fixed_margin_value = w.fixed_margin_value, fixed_uncapped_from = w.fixed_uncapped_from,
           fixed_crypto = w.fixed_crypto, fixed_valued_at = %(now)s
      FROM writes w
     WHERE s.facility_id = ANY(ARRAY(SELECT facility_id FROM writes WHERE store AND NOT is_new))
       AND w.facility_id = s.facility_id AND w.store AND NOT w.is_new
    RETURNING w.changed
),
inserted AS (
    INSERT INTO financing_marginstate (facility_id, market_value, margin_value, debt, margin_ratio, status,
                                       notified_status, valued_at, status_since, policy_id, open, fixed_basis,
                                       fixed_market_value, fixed_margin_value, fixed_uncapped_from, fixed_crypto,
                                       fixed_valued_at)
    SELECT w.facility_id, w.market_value, w.margin_value, w.debt, w.margin_ratio, w.status,
           CASE WHEN w.status IN ('no_debt', 'ok') THEN w.status ELSE 'ok' END, %(now)s, %(now)s, w.policy_id, true,
           %(basis)s, w.fixed_market_value, w.fixed_margin_value, w.fixed_uncapped_from, w.fixed_crypto, %(now)s
      FROM writes w WHERE w.is_new
    RETURNING 1
)
SELECT fast.n + long.n,
       (SELECT COUNT(*) FROM updated) + (SELECT COUNT(*) FROM stored WHERE changed) + (SELECT COUNT(*) FROM inserted),
       (SELECT COUNT(*) FROM snapshots),
       fast.n,
       (SELECT COUNT(*) FROM stored) + (SELECT COUNT(*) FROM inserted)
  FROM (SELECT COUNT(*) AS n FROM fast_pools WHERE NOT capped) AS fast, (SELECT COUNT(*) AS n FROM long_pools) AS long
"""
)

VALUATIONS_SQL = (
    "WITH"
    + _valuation_ctes(
        "false, NULL::numeric(20, 2), NULL::numeric(20, 2), NULL::numeric(20, 2), NULL::jsonb", ""
    )
    + "\nSELECT facility_id, market_value, margin_value, debt, margin_ratio, status FROM result"
)


def _scope_table(cursor, scope: str, params: dict[str, object]) -> None:
    cursor.execute("DROP TABLE IF EXISTS pg_temp.sweep_scope")
    cursor.execute(
        SCOPE_SQL.format(
            touched=TOUCHED_CTE if scope != SweepScope.CLIENTS else "",
            state_filter=STATE_FILTERS[scope],
            new_filter=NEW_FILTERS[scope],
            known_debt=KNOWN_DEBT[scope],
            posted=POSTED[scope],
            fast_candidates_apart=FAST_CANDIDATES_APART[scope],
        ),
        params,
    )
    # What the planner knows of the scope (how many rows are new, posted to, on a current fixed part) decides
    # how the valuation joins tens of thousands of rows: without statistics it guesses, and sorts. Three
    # booleans need no 30,000-row sample (the default target's): their target of 1 samples 300 rows.
    cursor.execute(
        "ALTER TABLE sweep_scope ALTER COLUMN posted SET STATISTICS 1, ALTER COLUMN is_new SET STATISTICS 1, "
        "ALTER COLUMN current SET STATISTICS 1"
    )
    cursor.execute("ANALYZE sweep_scope (posted, is_new, current)")


# Where the pools valued from their fixed parts come from: in a price-driven sweep, the margin states that may be
# (``FAST_CANDIDATES_APART``) of the holders of the moved crypto (or of the other assets moved: repriced the same,
# the basis is the same); in the other sweeps, none.
FAST_SOURCE = {
    True: f"""financing_marginstate s
     WHERE s.open AND s.fixed_basis = %(basis)s
       AND (s.fixed_crypto ?| %(moved_crypto)s::text[] OR s.facility_id IN ({HOLDERS.format(symbols="moved_other")}))
       AND s.facility_id NOT IN (SELECT c.facility_id FROM sweep_scope c)""",
    False: "financing_marginstate s WHERE false",
}

# Where the positions of the pools valued from them come from. In a price-driven sweep they are usually few
# (those posted to, those a cut now reaches; all of them only after a new security price, FX rate or asset
# term): each pool's balances by the index, a lateral subquery the planner may not flatten (OFFSET 0),
# whatever it guesses of their number. Otherwise every pool in scope is: one pass over the balances, hashed.
POSITIONS_FROM = {
    True: """long_pools lp
      CROSS JOIN LATERAL (
          SELECT b.instrument_id, b.amount FROM ledger_balance b
           WHERE b.account_id = lp.account_id AND b.amount <> 0 OFFSET 0
      ) b""",
    False: "long_pools lp JOIN ledger_balance b ON b.account_id = lp.account_id AND b.amount <> 0",
}

# The pool behind each facility valued from its positions: in a price-driven sweep a few, each found by the
# indexes (a lateral subquery the planner may not flatten); otherwise every facility in scope, hashed. A
# client without a pool (none is made so, but the data may say so) has nothing to value: zero.
POOL_ACCOUNTS = {
    True: """LEFT JOIN LATERAL (
          SELECT p.account_id FROM financing_facility f
            JOIN collateral_collateralpool p ON p.client_id = f.client_id
           WHERE f.id = s.facility_id OFFSET 0
      ) p ON true""",
    False: """LEFT JOIN financing_facility f ON f.id = s.facility_id
      LEFT JOIN collateral_collateralpool p ON p.client_id = f.client_id""",
}

# Sorting and hashing a whole book fits in memory with this; PostgreSQL's default (4 MB) spills to disk.
SWEEP_WORK_MEM = "128MB"


def _prepare(cursor, scope: str, params: dict[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    """Load the per-asset unit values and the facilities in scope into temporary tables; return the
    statement's parameters and the pieces of its text that depend on the assets (``_crypto_sql``): only a
    price-driven sweep values pools from their fixed parts."""
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
        "concentration_limit numeric, eligible boolean, crypto boolean) ON COMMIT DROP"
    )
    if units:  # one statement, a column per array (not a round trip per asset)
        rows = [
            (u.symbol, u.unit_value, u.haircut, u.concentration_limit, u.eligible, u.crypto) for u in units
        ]
        cursor.execute(
            "INSERT INTO sweep_units SELECT * FROM unnest(%s::varchar[], %s::numeric[], %s::numeric[], "
            "%s::numeric[], %s::boolean[], %s::boolean[])",
            [list(column) for column in zip(*rows, strict=True)],
        )
    default = default_policy()
    crypto = {u.symbol for u in units if u.crypto}
    moved = params.get("symbols") or []
    params = {
        "default_warning": default.warning,
        "default_margin_call": default.margin_call,
        "default_forced_sale": default.forced_sale,
        "basis": fixed_basis(units),
        "moved_crypto": [symbol for symbol in moved if symbol in crypto],
        "moved_other": [symbol for symbol in moved if symbol not in crypto],
        **params,
    }
    _scope_table(cursor, scope, params)
    pieces, crypto_params = _crypto_sql(units)
    fast = scope == SweepScope.MOVED
    return {**params, **crypto_params}, {
        **pieces,
        "fast_source": FAST_SOURCE[fast],
        "positions_from": POSITIONS_FROM[fast],
        "pool_accounts": POOL_ACCOUNTS[fast],
    }


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
) -> tuple[int, int, int, int, int, int]:
    """Valued, changed, snapshots written, valued from a fixed part, fixed parts stored, and the milliseconds
    spent finding the scope."""
    scope, params = _scope(clients, symbols, since)
    with connection.cursor() as cursor:
        sweep_lock()
        started = time.perf_counter()
        params, pieces = _prepare(cursor, scope, {**params, "now": now})
        scope_ms = _ms_since(started)
        cursor.execute(SWEEP_SQL.format(**pieces), params)
        return (*cursor.fetchone(), scope_ms)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


Figures = tuple[int, Decimal, Decimal, Decimal, Decimal | None, str]


def valuations_of(clients: list[int]) -> dict[int, Figures]:
    """Live figures (facility id, market value, margin value, debt, ratio, status) of the open facilities
    of ``clients``: one statement on PostgreSQL, one bulk read and the pure calculations elsewhere."""
    if connection.vendor != "postgresql":
        return {row[0]: row for row in facility_figures(clients)}
    with connection.cursor() as cursor:
        params, pieces = _prepare(cursor, SweepScope.CLIENTS, {"clients": clients})
        cursor.execute(VALUATIONS_SQL.format(**pieces), params)
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
    policies = dict(
        Facility.objects.filter(pk__in=[f[0] for f in figures if f[0] not in states]).values_list(
            "pk", "policy_id"
        )
    )
    snapshots, updates, inserts = [], [], []
    for facility_id, market_value, margin_value, debt, ratio, status in figures:
        state = states.get(facility_id)
        if state is None:
            notified = status if status in ("no_debt", "ok") else "ok"
            inserts.append(
                MarginState(
                    facility_id=facility_id, market_value=market_value, margin_value=margin_value, debt=debt,
                    margin_ratio=ratio, status=status, notified_status=notified, valued_at=now, status_since=now,
                    policy_id=policies[facility_id],
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
            valued, changed, snapshots, run.valued_from_fixed_part, parts_stored, run.scope_ms = (
                _sweep_postgresql(clients, symbols, since, now)
            )
        else:
            if clients is None:
                clients = _clients_in_scope(symbols, since)
            run.scope_ms = _ms_since(scope_started)
            valued, changed, snapshots = _sweep_generic(clients, now)
    return SweepResult(
        run=run,
        facilities_valued=valued,
        states_changed=changed,
        snapshots_written=snapshots,
        fixed_parts_stored=parts_stored,
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
