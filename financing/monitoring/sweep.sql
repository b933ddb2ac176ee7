-- The margin sweep's statements, run by financing/monitoring/sweep.py: named pieces, their open slots
-- (in braces) filled by the code with psycopg.sql, their parameters (percent-name-s) sent by the driver.
-- How the sweep works, and why it is shaped so, is in docs/monitoring.md.

-- name: touched
-- Clients whose ledger accounts were posted to since a moment, and their facilities (not in a run for
-- given clients, which takes its clients as posted to).
WITH touched AS MATERIALIZED (
    SELECT DISTINCT a.client_id FROM ledger_transaction t
      JOIN ledger_leg l ON l.transaction_id = t.id
      JOIN ledger_account a ON a.id = l.account_id
     WHERE t.posted_at >= %(since)s AND a.client_id IS NOT NULL
),
touched_facilities AS MATERIALIZED (
    SELECT f.id FROM financing_facility f WHERE f.client_id IN (SELECT client_id FROM touched)
)


-- name: holders
-- The facilities of the clients whose pools hold any of the given symbols (by the ledger's balances).
SELECT f.id FROM ledger_balance b
                JOIN collateral_collateralpool p ON p.account_id = b.account_id
                JOIN financing_facility f ON f.client_id = p.client_id
               WHERE b.instrument_id = ANY({symbols}) AND b.amount <> 0


-- name: state_filter.all
-- Which margin states are in scope: every open facility's; those of given clients; or, in a price-driven
-- sweep, those of the clients posted to and of the holders of the moved assets. A state whose fixed part was
-- worked out on the current basis says which crypto its pool holds (its holdings have not moved unless its
-- client was posted to), so the holders of a moved crypto are found in this table; the ledger is asked for
-- the holders of anything else, and for the pools whose part may be out of date.



-- name: state_filter.clients
AND s.facility_id IN (SELECT f.id FROM financing_facility f WHERE f.client_id = ANY(%(clients)s))


-- name: state_filter.moved
AND (s.facility_id IN (SELECT id FROM touched_facilities)
             OR (s.fixed_basis = %(basis)s AND s.fixed_crypto ?| %(moved_crypto)s::text[])
             OR (s.fixed_basis <> %(basis)s AND s.facility_id IN ({holders_of_moved_crypto}))
             OR s.facility_id IN ({holders_of_moved_other}))


-- name: state_filter.book
-- The whole book valued from the stored fixed parts where they hold (a stress test, valuation_of_book_run): every
-- open state, as in a run of every facility.


-- name: state_filter.book_positions
-- The whole book from the positions (a stress test that moves more than the crypto): every open state, with its
-- debt as a price-driven sweep takes it.


-- name: new_filter.all
-- Facilities new to the sweeps (no margin state yet) in scope: every one, those of given clients, or those
-- opened since the previous sweep.



-- name: new_filter.clients
AND f.client_id = ANY(%(clients)s)


-- name: new_filter.moved
AND f.created_at >= %(since)s


-- name: new_filter.book
-- The whole book from the fixed parts: as in a price-driven sweep, a facility opened before the previous sweep
-- that looked at every client posted to has a state (that sweep gave it one).
AND f.created_at >= %(since)s


-- name: new_filter.book_positions
AND f.created_at >= %(since)s


-- name: posted.all
-- Whether the client was posted to since the previous sweep (a run for given clients takes them all as
-- posted to): such a pool is never valued from its stored fixed part, and its part is worked out again.
s.facility_id IN (SELECT id FROM touched_facilities)


-- name: posted.clients
true


-- name: posted.moved
s.facility_id IN (SELECT id FROM touched_facilities)


-- name: posted.book
s.facility_id IN (SELECT id FROM touched_facilities)


-- name: posted.book_positions
s.facility_id IN (SELECT id FROM touched_facilities)


-- name: known_debt.all
-- A debt changes only by postings to the loan accounts: in a price-driven sweep the state's debt is still
-- exact for every client nothing was posted to, and only the others' balances are read.
NULL::numeric


-- name: known_debt.clients
NULL::numeric


-- name: known_debt.moved
CASE WHEN NOT ({posted}) THEN s.debt END


-- name: known_debt.book
CASE WHEN NOT ({posted}) THEN s.debt END


-- name: known_debt.book_positions
CASE WHEN NOT ({posted}) THEN s.debt END


-- name: fast_candidates_apart.all
-- In a price-driven sweep, the states a fixed part may value are read by the valuation itself (fast_source),
-- not copied into the scope; the others are found by the indexes: another basis as two ranges either side
-- of the current one, then the facilities of the clients posted to, each state by its key.



-- name: fast_candidates_apart.clients



-- name: fast_candidates_apart.moved
AND s.facility_id = ANY(ARRAY(
             SELECT o.facility_id FROM financing_marginstate o WHERE o.fixed_basis < %(basis)s OR o.fixed_basis > %(basis)s
             UNION ALL
             SELECT id FROM touched_facilities))


-- name: fast_candidates_apart.book
-- The whole book from the fixed parts: in the scope table only the states whose part cannot be used (another
-- basis, or a client posted to); every other open state is read by the valuation itself (fast_source.book).
AND s.facility_id = ANY(ARRAY(
             SELECT o.facility_id FROM financing_marginstate o WHERE o.fixed_basis < %(basis)s OR o.fixed_basis > %(basis)s
             UNION ALL
             SELECT id FROM touched_facilities))


-- name: fast_candidates_apart.book_positions


-- name: scope
-- The facilities in scope, into a temporary table: one row each, with its policy, its previous margin
-- state, its pool's stored fixed part, whether its client was posted to, and its debt. A table rather than
-- a CTE because the planner then knows its size and picks hash joins.
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
           s.valued_at AS old_valued_at, {posted} AS posted, {known_debt} AS known_debt, s.fixed_basis = %(basis)s AS current,
           s.fixed_market_value, s.fixed_margin_value, s.fixed_uncapped_from, s.fixed_crypto
      FROM financing_marginstate s
     WHERE s.open {fast_candidates_apart} {state_filter}
    UNION ALL
    SELECT f.id, f.policy_id, true, NULL, NULL, NULL, NULL, NULL, NULL::timestamptz, true, NULL, false, NULL, NULL,
           NULL, NULL
      FROM financing_facility f
     WHERE f.status <> 'closed' {new_filter}
       AND NOT EXISTS (SELECT FROM financing_marginstate s WHERE s.facility_id = f.id)
  ) AS c


-- name: fast_source.price_driven
-- Where the pools valued from their fixed parts come from: in a price-driven sweep, the margin states of
-- the holders of the moved assets not in the scope table; in the other sweeps, none.
financing_marginstate s
     WHERE s.open AND s.fixed_basis = %(basis)s
       AND (s.fixed_crypto ?| %(moved_crypto)s::text[] OR s.facility_id IN ({holders_of_moved_other}))
       AND s.facility_id NOT IN (SELECT c.facility_id FROM sweep_scope c)


-- name: fast_source.other
financing_marginstate s WHERE false


-- name: fast_source.book
-- The whole book from the fixed parts (a stress test): every open state on the current basis not in the scope.
financing_marginstate s
     WHERE s.open AND s.fixed_basis = %(basis)s AND s.facility_id NOT IN (SELECT c.facility_id FROM sweep_scope c)


-- name: positions_from.price_driven
-- The positions of the pools valued from them: in a price-driven sweep each pool's balances by the index
-- (a lateral subquery the planner may not flatten); otherwise one pass over the balances, hashed.
long_pools lp
      CROSS JOIN LATERAL (
          SELECT b.instrument_id, b.amount FROM ledger_balance b
           WHERE b.account_id = lp.account_id AND b.amount <> 0 OFFSET 0
      ) b


-- name: positions_from.other
long_pools lp JOIN ledger_balance b ON b.account_id = lp.account_id AND b.amount <> 0


-- name: pool_accounts.price_driven
-- The pool behind each facility valued from its positions: by the indexes in a price-driven sweep,
-- hashed otherwise. A client without a pool has nothing to value: zero.
LEFT JOIN LATERAL (
          SELECT p.account_id FROM financing_facility f
            JOIN collateral_collateralpool p ON p.client_id = f.client_id
           WHERE f.id = s.facility_id OFFSET 0
      ) p ON true


-- name: pool_accounts.other
LEFT JOIN financing_facility f ON f.id = s.facility_id
      LEFT JOIN collateral_collateralpool p ON p.client_id = f.client_id


-- name: crypto.column
-- A crypto's value in a pool valued from its fixed part: the quantity the part holds at the current unit
-- value, rounded as the valuation from the ledger rounds it (one column per crypto asset).
ROUND(COALESCE((s.fixed_crypto ->> {symbol})::numeric, 0) * {unit}, 2) AS {name}


-- name: crypto.margin
FLOOR({name} * (1 - {haircut}) * 100) * 0.01


-- name: crypto.uncapped
{name} <= {limit} * market_value


-- name: valuation
-- The valuation, shared by the sweep and the live valuation of given clients. A pool whose holdings have
-- not moved, whose fixed part is on the current basis, and which no concentration cut reaches at the new
-- crypto prices is valued from that part (fast_pools); every other pool from its positions (long_pools):
-- market value per position half-up to the cent, margin value with the concentration cut down to the
-- cent. Then ratio and status by the policy: the rules of collateral.calculations and
-- financing.calculations, which the tests compare with this.
-- (OFFSET 0: each crypto's value is worked out once, not wherever the statement uses it.)
fast_inputs AS (
    SELECT s.facility_id, s.policy_id, false AS is_new, s.status AS old_status, s.margin_ratio AS old_ratio,
           s.market_value AS old_market_value, s.margin_value AS old_margin_value, s.debt AS old_debt,
           s.valued_at AS old_valued_at, s.debt, s.fixed_market_value, s.fixed_margin_value, s.fixed_uncapped_from AS uncapped_from{crypto_columns}
      FROM {fast_source}
    OFFSET 0
),
fast_values AS (
    SELECT f.*, fixed_market_value + {crypto_market} AS market_value, fixed_margin_value + {crypto_margin} AS margin_value
      FROM fast_inputs f
),
-- ``capped``: a concentration cut applies at the new crypto prices, and the pool is valued from its positions.
fast_pools AS MATERIALIZED (
    SELECT facility_id, policy_id, is_new, old_status, old_ratio, old_market_value, old_margin_value, old_debt,
           old_valued_at, debt, market_value::numeric(20, 2) AS market_value, GREATEST(margin_value, 0)::numeric(20, 2) AS margin_value,
           ((uncapped_from IS NULL OR market_value >= uncapped_from) AND {crypto_uncapped}) IS NOT TRUE AS capped
      FROM fast_values
),
-- Every other pool is valued from its positions, each with what the valuation carries of its facility;
-- ``refresh``: its stored fixed part may be out of date (the holdings may have moved, or it was worked out on
-- another basis, or never), and is worked out again.
long_pools AS MATERIALIZED (
    SELECT s.*, p.account_id FROM (
        SELECT c.facility_id, c.policy_id, c.is_new, c.old_status, c.old_ratio, c.old_market_value, c.old_margin_value,
               c.old_debt, c.old_valued_at, c.debt, c.current, c.fixed_market_value, c.fixed_margin_value, c.fixed_uncapped_from,
               c.fixed_crypto, c.posted OR c.is_new OR NOT c.current AS refresh
          FROM sweep_scope c
        UNION ALL
        -- A fast candidate that a concentration cut now reaches: its part is current (not worked out again).
        SELECT fp.facility_id, fp.policy_id, false, fp.old_status, fp.old_ratio, fp.old_market_value,
               fp.old_margin_value, fp.old_debt, fp.old_valued_at, fp.debt, true, NULL, NULL, NULL, NULL, false
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
-- Each pool valued, with its new fixed part where one is stored: none of those valued from their part
-- (``from_fixed``: the stress test plans those pools' sales from their parts too).
valued AS (
    SELECT fp.facility_id, fp.policy_id, fp.is_new, fp.old_status, fp.old_ratio, fp.old_market_value,
           fp.old_margin_value, fp.old_debt, fp.old_valued_at, fp.debt, fp.market_value, fp.margin_value,
           false AS store,
           NULL::numeric(20, 2) AS fixed_market_value, NULL::numeric(20, 2) AS fixed_margin_value,
           NULL::numeric(20, 2) AS fixed_uncapped_from, NULL::jsonb AS fixed_crypto, true AS from_fixed
      FROM fast_pools fp
     WHERE NOT fp.capped
    UNION ALL
    SELECT lp.facility_id, lp.policy_id, lp.is_new, lp.old_status, lp.old_ratio, lp.old_market_value,
           lp.old_margin_value, lp.old_debt, lp.old_valued_at, lp.debt, COALESCE(v.market_value, 0)::numeric(20, 2),
           GREATEST(COALESCE(v.margin_value, 0), 0)::numeric(20, 2), {fixed_columns}, false
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
                ELSE 'ok' END AS status,
           COALESCE(mp.target, %(default_target)s) AS target
      FROM valued v
      LEFT JOIN financing_marginpolicy mp ON mp.id = v.policy_id
)


-- name: fixed.sweep_columns
-- What valued carries of the new fixed parts: the sweep stores them; a valuation alone leaves them.
COALESCE(p.store, false), p.market_value, p.margin_value, p.uncapped_from, p.crypto


-- name: fixed.sweep_join
LEFT JOIN new_fixed_parts p ON p.facility_id = lp.facility_id


-- name: fixed.valuation_columns
false, NULL::numeric(20, 2), NULL::numeric(20, 2), NULL::numeric(20, 2), NULL::jsonb


-- name: sweep
-- One statement: value, then write the margin states and snapshots that changed, and the fixed parts stored
-- anew.
WITH {valuation},
-- What is written of each facility: its figures where they are worth writing, its fixed part where it is
-- stored anew. Figures are worth writing (financing.calculations.figures_worth_writing, the same rule) when the
-- status or the debt changed, the ratio crossed the target, or moved by more than the step (or to or from
-- infinite); any other change once the state is older than the write interval. Every crossing the ladder acts
-- on is written at once; a drift within the step waits.
writes AS MATERIALIZED (
    SELECT w.* FROM (
        SELECT r.facility_id, r.is_new, r.policy_id, r.market_value, r.margin_value, r.debt, r.margin_ratio, r.status,
               r.old_status, r.old_ratio,
               r.is_new OR r.old_status <> r.status OR r.old_debt <> r.debt
                   OR (r.old_debt <= r.target * r.old_margin_value) <> (r.debt <= r.target * r.margin_value)
                   OR (r.old_ratio IS NULL) <> (r.margin_ratio IS NULL)
                   OR COALESCE(ABS(r.margin_ratio - r.old_ratio) > %(ratio_step)s, false)
                   OR (r.old_valued_at <= %(stale_before)s
                       AND (r.old_ratio IS DISTINCT FROM r.margin_ratio OR r.old_market_value <> r.market_value
                            OR r.old_margin_value <> r.margin_value)) AS changed,
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
       SET market_value = CASE WHEN w.changed THEN w.market_value ELSE s.market_value END,
           margin_value = CASE WHEN w.changed THEN w.margin_value ELSE s.margin_value END,
           margin_ratio = CASE WHEN w.changed THEN w.margin_ratio ELSE s.margin_ratio END,
           debt = w.debt, status = w.status,  -- unchanged unless ``changed``
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
       (SELECT COUNT(*) FROM stored) + (SELECT COUNT(*) FROM inserted),
       -- The states gained and lost by each status, for the firm's totals (financing.monitoring.totals).
       (SELECT COALESCE(jsonb_object_agg(m.status, m.n), '{{}}'::jsonb) FROM (
            SELECT d.status, SUM(d.n) AS n FROM (
                SELECT w.status, 1 AS n FROM writes w WHERE w.changed AND (w.is_new OR w.old_status <> w.status)
                UNION ALL
                SELECT w.old_status, -1 FROM writes w WHERE w.changed AND NOT w.is_new AND w.old_status <> w.status
            ) AS d GROUP BY d.status
        ) AS m),
       -- The states that came onto the staff console's at-risk list less those that left it: at warning or
       -- worse, or within near_warning of the policy's warning level (financing.monitoring.totals).
       (SELECT COALESCE(SUM(
                   CASE WHEN (w.status IN ('warning', 'margin_call', 'forced_sale')
                              OR (w.status = 'ok' AND w.margin_ratio >= COALESCE(mp.warning, %(default_warning)s) - %(near_warning)s))
                             IS TRUE THEN 1 ELSE 0 END
                 - CASE WHEN NOT w.is_new
                             AND (w.old_status IN ('warning', 'margin_call', 'forced_sale')
                                  OR (w.old_status = 'ok' AND w.old_ratio >= COALESCE(mp.warning, %(default_warning)s) - %(near_warning)s))
                             IS TRUE THEN 1 ELSE 0 END), 0)
          FROM writes w LEFT JOIN financing_marginpolicy mp ON mp.id = w.policy_id
         WHERE w.changed)
  FROM (SELECT COUNT(*) AS n FROM fast_pools WHERE NOT capped) AS fast, (SELECT COUNT(*) AS n FROM long_pools) AS long


-- name: principal
-- After the sweep, in its transaction: the principal of the facilities it took as posted to (and the new
-- ones) read again from the ledger, stored where it changed; the change to the firm's total returned. A
-- principal changes only by a posting, so every other state's still holds.
WITH fresh AS (
    SELECT c.facility_id, COALESCE(b.amount, 0)::numeric(20, 2) AS principal, s.principal AS old_principal
      FROM sweep_scope c
      JOIN financing_marginstate s ON s.facility_id = c.facility_id
      JOIN financing_facility f ON f.id = c.facility_id
      LEFT JOIN ledger_balance b ON b.account_id = f.principal_account_id AND b.instrument_id = 'HKD'
     WHERE c.posted OR c.is_new
),
stored AS (
    UPDATE financing_marginstate s SET principal = f.principal
      FROM fresh f
     WHERE s.facility_id = f.facility_id AND f.principal <> f.old_principal
    RETURNING f.principal - f.old_principal AS change
)
SELECT COALESCE(SUM(change), 0) FROM stored


-- name: valuations
-- The live figures of given clients' facilities, written nowhere.
WITH {valuation}
SELECT facility_id, market_value, margin_value, debt, margin_ratio, status FROM result

-- name: work_mem
-- Sorting and hashing a whole book fits in memory with this; the server's default spills to disk.
SET LOCAL work_mem = {work_mem}

-- name: no_jit
-- JIT compiling the statement costs more than it saves: the work is numeric arithmetic, not expression
-- evaluation (measured: 70 ms of compilation for a 2 s statement).
SET LOCAL jit = off

-- name: units_drop
-- ON COMMIT DROP cleans up after a committed sweep; an enclosing transaction (a test, the ladder after the
-- sweep) keeps the table, hence the explicit drop.
DROP TABLE IF EXISTS pg_temp.sweep_units

-- name: units_create
-- The per-asset HKD unit values (price times FX), haircuts and limits, for the statement to join on.
CREATE TEMP TABLE sweep_units (symbol varchar(20) PRIMARY KEY, unit_value numeric, haircut numeric,
                               concentration_limit numeric, eligible boolean, crypto boolean) ON COMMIT DROP

-- name: units_insert
INSERT INTO sweep_units SELECT * FROM unnest(%(symbol)s::varchar[], %(unit_value)s::numeric[], %(haircut)s::numeric[],
                                             %(concentration_limit)s::numeric[], %(eligible)s::boolean[],
                                             %(crypto)s::boolean[])

-- name: scope_drop
DROP TABLE IF EXISTS pg_temp.sweep_scope

-- name: scope_statistics
-- What the planner knows of the scope (how many rows are new, posted to, on a current fixed part) decides how
-- the valuation joins tens of thousands of rows: without statistics it guesses, and sorts. Three booleans need
-- no 30,000-row sample: a statistics target of 1 samples 300 rows.
ALTER TABLE sweep_scope ALTER COLUMN posted SET STATISTICS 1, ALTER COLUMN is_new SET STATISTICS 1,
                        ALTER COLUMN current SET STATISTICS 1

-- name: scope_analyze
ANALYZE sweep_scope (posted, is_new, current)
