-- The stress run's statement, run by oversight/stress.py through financing.monitoring.sweep.valuation_of_book_run:
-- the sweep's own valuation of every open facility (the valuation piece, at the scenario's shocked unit values), and one
-- row per facility into the run's results. It writes nothing else: the margin states it reads are the figures
-- "before" (as last swept), and the repayment that cures is the margin-call ladder's own function.

-- name: results
-- The rows written, each once: its figures and, for most of the rows a sale would reach in a crypto crash, its
-- forced-sale plan (the CTEs ``part_*``: piece ``fast`` and its per-crypto parts, composed by
-- oversight.stress._results_statement). Returned: the firm's figures of the rows (per status before and after, how many
-- and their sums: a handful of rows oversight.stress._firm_figures adds up), the rows a sale would reach still
-- without a plan (``plan_positions`` plans them from the positions), and the volume per asset of the plans written
-- here.
WITH {valuation},
%%FAST%%
written AS (
    INSERT INTO oversight_stressresult (run_id, facility_id, market_value_before, margin_value_before, debt_before,
                                        ratio_before, status_before, market_value, margin_value, debt, ratio_after,
                                        status_after, repayment_to_cure, sale_plan, sale_proceeds, ratio_after_sale,
                                        shortfall)
    SELECT %(run)s, r.facility_id, r.old_market_value, r.old_margin_value, r.old_debt, r.old_ratio,
           COALESCE(r.old_status, ''), r.market_value, r.margin_value, r.debt, r.margin_ratio, r.status, r.cure,
           COALESCE(p.plan, '[]'::jsonb), COALESCE(p.proceeds, 0), p.ratio, 0
      FROM (SELECT r.*, CASE WHEN r.status IN ('margin_call', 'forced_sale')
                             THEN cure_repayment(r.debt, r.margin_value, r.target) ELSE 0 END AS cure
              FROM result r) AS r
      LEFT JOIN part_plans p ON p.facility_id = r.facility_id
    RETURNING facility_id, status_after IN ('margin_call', 'forced_sale') AND ratio_after_sale IS NULL AS unplanned
)
SELECT 'rows', COALESCE(r.old_status, ''), r.status, COUNT(*), SUM(r.old_market_value), SUM(r.market_value),
       SUM(r.old_margin_value), SUM(r.margin_value),
       SUM(CASE WHEN r.status IN ('margin_call', 'forced_sale') THEN cure_repayment(r.debt, r.margin_value, r.target)
                ELSE 0 END),
       SUM(r.debt)
  FROM result r GROUP BY COALESCE(r.old_status, ''), r.status
UNION ALL
SELECT 'unplanned', NULL, NULL, w.facility_id, NULL, NULL, NULL, NULL, NULL, NULL FROM written w WHERE w.unplanned
%%VOLUME%%


-- name: fast
-- A plan made from the pool's stored fixed part, by the rules forced_sale_plan follows (and ``plan_positions`` and
-- ``plans_write`` follow on the positions): the pool's HKD repays first; the crypto is sold whole in the default
-- order (BTC, ETH, then by haircut and symbol: its columns 0, 1, … in that order) until a sale reaches the target;
-- that last sale is the least whole-lot quantity that reaches it, the first of the candidates of
-- ``LeastSearch.window`` that does (an exact window where no cut binds). Made only where that is the whole story:
-- the pool is valued from its part (``from_fixed``), the policy keeps the default order, no crypto it holds has a
-- concentration limit, its market value without the cash stays at or above the part's ``uncapped_from`` through
-- the sales (no cut binds), and the target is reached before the last crypto it holds is sold whole (after that,
-- whether anything is left to sell, and so whether the rest is a shortfall, is for its positions to say). The part
-- counts the other assets (securities, cash) as one: the cash comes out of it (the planner never counts cash: the
-- HKD repays first, other cash is never sold); a limit on a cash asset only raises the part's ``uncapped_from`` (the
-- guard stricter, never wrong); a holding is never negative (the ledger refuses one). One row per pool throughout:
-- its crypto side by side in columns. (Filled twice before it runs: its slots by oversight.stress._results_statement
-- with str.format, then the valuation by psycopg's sql.SQL.format: a literal brace in its code would have to be
-- written four times over.)
part_need AS MATERIALIZED (
    SELECT r.facility_id, r.debt, r.target, COALESCE(%(sale_cost)s::numeric, mp.sale_cost_rate) AS cost,
           s.fixed_market_value - COALESCE(c.mv, 0) AS rest_mv, s.fixed_margin_value - COALESCE(c.lv, 0) AS rest_lv,
           s.fixed_uncapped_from AS uncapped_from,
           FLOOR(LEAST(COALESCE(c.hkd, 0), GREATEST(r.debt, 0)) * 100) * 0.01 AS cash,
           {quantities}
      FROM result r
      JOIN financing_marginstate s ON s.facility_id = r.facility_id
      JOIN financing_marginpolicy mp ON mp.id = COALESCE(r.policy_id, %(default_policy)s)
      -- The pool's cash, valued as the part values it: out of the rest (the HKD repays; no cash is ever sold).
      LEFT JOIN LATERAL (
          SELECT SUM(b.amount) FILTER (WHERE b.instrument_id = 'HKD') AS hkd, SUM(ROUND(b.amount * u.unit, 2)) AS mv,
                 SUM(CASE WHEN u.eligible THEN GREATEST(FLOOR(ROUND(b.amount * u.unit, 2) * (1 - u.haircut) * 100) * 0.01, 0)
                          ELSE 0 END) AS lv
            FROM financing_facility f
            JOIN collateral_collateralpool p ON p.client_id = f.client_id
            JOIN ledger_balance b ON b.account_id = p.account_id AND b.instrument_id = ANY(%(cash_symbols)s)
                                 AND b.amount > 0
            JOIN stress_plan_units u ON u.symbol = b.instrument_id
           WHERE f.id = r.facility_id
      ) c ON true
     WHERE r.from_fixed AND r.status IN ('margin_call', 'forced_sale')
       AND jsonb_array_length(mp.sale_order) = 0
),
-- Each crypto's market value, margin value and proceeds of its whole sale; then the state before any sale (the cash
-- repaid) and after the whole sale of each: debt, margin value, market value without the cash.
part_values AS (
    SELECT n.*, {values} FROM part_need n OFFSET 0
),
part_states AS (
    SELECT v.*, v.debt - v.cash AS d_start, v.rest_lv + {lvf_all} AS lv_start, v.rest_mv + {mv_all} AS m_start,
           {afters}
      FROM part_values v
    OFFSET 0
),
-- ``last``: the first crypto held whose whole sale reaches the target.
part_chosen AS (
    SELECT s.*, s.d_start <= s.target * s.lv_start AS start_reaches, CASE {last} END AS last,
           {limited} AS limited, {held_any} AS held_any
      FROM part_states s
    OFFSET 0
),
-- The last sale's window of candidates (piece ``window``).
part_windows AS (
{window}
),
-- Each window's candidates tried in increasing order, each valued; the first that reaches the target is the last
-- sale.
part_last AS (
    SELECT w.*, x.quantity AS q_last, x.sold AS sold_last, x.proceeds AS proceeds_last,
           (w.debt_c - x.proceeds) * 0.01 AS debt_after,
           w.lv_after + CASE WHEN w.eligible THEN GREATEST(FLOOR(x.left_value * (1 - w.haircut)) * 0.01, 0) ELSE 0 END
               AS lv_last
      FROM part_windows w
     CROSS JOIN LATERAL (
         SELECT q.quantity, q.sold, FLOOR(q.sold * (1 - w.cost)) AS proceeds,
                ROUND(100 * (w.held - q.quantity) * w.unit) AS left_value
           FROM (
             SELECT g.quantity, ROUND(100 * g.quantity * w.unit) AS sold
               FROM (
                 SELECT LEAST(CASE WHEN w.by_cents
                                   THEN LEAST(GREATEST(CEIL((w.cents_low + n - 0.5) / w.lot_value), 1), w.held_lots)
                                   ELSE w.lots_low + n END * w.lot, w.held) AS quantity
                   FROM generate_series(0, w.width - 1) AS n
                 OFFSET 0
               ) AS g
             OFFSET 0
           ) AS q
          WHERE (w.debt_c - FLOOR(q.sold * (1 - w.cost))) * 0.01
                <= w.target * (w.lv_after + CASE WHEN w.eligible
                    THEN GREATEST(FLOOR(ROUND(100 * (w.held - q.quantity) * w.unit) * (1 - w.haircut)) * 0.01, 0)
                    ELSE 0 END)
          LIMIT 1
     ) AS x
    OFFSET 0
),
-- The plans: the pools whose target the crypto reaches before the last crypto held is sold whole, and those whose
-- cash alone reaches it (a plan of their HKD, or none).
part_plans AS MATERIALIZED (
    SELECT l.facility_id,
           CASE WHEN l.cash > 0 THEN jsonb_build_array(jsonb_build_object(
                    'asset', 'HKD', 'quantity', l.cash::text, 'lot_size', '0.01', 'market_value', l.cash::text,
                    'proceeds', l.cash::text)) ELSE '[]'::jsonb END
               || {whole_sales}
               || jsonb_build_array(jsonb_build_object(
                      'asset', l.symbol,
                      'quantity', CASE WHEN l.q_last::text LIKE '%%.%%' THEN rtrim(rtrim(l.q_last::text, '0'), '.')
                                       ELSE l.q_last::text END,
                      'lot_size', l.lot_text, 'market_value', (l.sold_last * 0.01)::text,
                      'proceeds', (l.proceeds_last * 0.01)::text)) AS plan,
           l.cash + {whole_proceeds} + l.proceeds_last * 0.01 AS proceeds,
           CASE WHEN l.debt_after <= 0 THEN 0 ELSE ROUND(l.debt_after::numeric(40, 20) / l.lv_last, 8) END AS ratio,
           {sold_volume}
      FROM part_last l
     WHERE ({held_after_last} OR l.q_last < l.held)
       AND (l.uncapped_from IS NULL OR l.m_after >= l.uncapped_from)
    UNION ALL
    SELECT c.facility_id,
           CASE WHEN c.cash > 0 THEN jsonb_build_array(jsonb_build_object(
                    'asset', 'HKD', 'quantity', c.cash::text, 'lot_size', '0.01', 'market_value', c.cash::text,
                    'proceeds', c.cash::text)) ELSE '[]'::jsonb END,
           c.cash,
           CASE WHEN c.d_start <= 0 THEN 0 ELSE ROUND(c.d_start::numeric(40, 20) / c.lv_start, 8) END,
           {no_volume}
      FROM part_chosen c
     WHERE c.start_reaches AND c.held_any AND NOT c.limited
       AND (c.uncapped_from IS NULL OR c.m_start >= c.uncapped_from)
),


-- name: window
-- The window of candidates that holds the least whole-lot sale reaching the target where no cut binds
-- (collateral.calculations.LeastSearch.window), in cents of HKD, for each row of the slot's query: its debt before the
-- sale (debt_c), the margin value of the rest of the pool (others), the target, whether the asset is eligible, what a
-- cent sold takes off D − T·LV (slope) and off T·LV (kept), the position's value (full_value), a lot's value and the
-- lots held. ``by_cents``: one candidate per cent value sold (the least lot count that sells it), else one per lot
-- count; ``width`` candidates from ``cents_low`` or ``lots_low``. Rows whose slope is too flat or window too wide are
-- left out. Shared by the plans written with the rows (piece ``fast``) and those from the positions (``plans_write``);
-- its slot is filled with str.format, and the statement it goes into is composed again with psycopg's sql.SQL.format
-- (a literal brace in its code would have to be escaped for both).
SELECT w.*, w.cents_high - w.cents_low <= w.lots_high - w.lots_low AS by_cents,
       LEAST(w.cents_high - w.cents_low, w.lots_high - w.lots_low) + 1 AS width
  FROM (
    SELECT l.*, GREATEST(LEAST(CEIL((l.cents_high - 0.5) / l.lot_value) + 1, l.held_lots), l.lots_low) AS lots_high
      FROM (
        SELECT b.*, GREATEST(b.cents_high_raw, b.cents_low) AS cents_high,
               GREATEST(FLOOR((b.cents_low - 0.5) / b.lot_value), 1) AS lots_low
          FROM (
            SELECT s.*,
                   GREATEST(FLOOR((s.debt_c - s.target * s.others - s.kept * (s.full_value + 1)) / s.slope) - 1, 0)
                       AS cents_low,
                   CEIL((s.debt_c + 1 - s.target * s.others + CASE WHEN s.eligible THEN s.target ELSE 0 END
                         - s.kept * (s.full_value - s.lot_value)) / s.slope) + 1 AS cents_high_raw
              FROM ({rows}) AS s
             WHERE s.slope >= %(min_slope)s
            OFFSET 0
          ) AS b
        OFFSET 0
      ) AS l
    OFFSET 0
  ) AS w
 WHERE LEAST(w.cents_high - w.cents_low, w.lots_high - w.lots_low) + 1 <= %(max_candidates)s
OFFSET 0


-- name: plans_write.window_rows
-- The last sale's row of each pool, with what its window is worked out from (piece ``window``) and what the search
-- values each candidate with: no FROM, it reads the position ``m`` of the lateral in ``plans_write`` it stands in.
SELECT 100 * (m.d0 - m.pf_through + m.pf) AS debt_c, 100 * (m.lv0 - m.lvf_through) AS others,
       m.m0 - m.mv_through AS rest, m.lvl0 - m.lvl_through AS lvl_after, 100 * (m.lvu0 - m.lvu_through) AS uncut,
       m.lv0 - m.lvf_through - (m.lvl0 - m.lvl_through) AS fixed, m.target, m.eligible,
       (1 - m.cost) - m.target * CASE WHEN m.eligible THEN 1 - m.haircut ELSE 0 END AS slope,
       CASE WHEN m.eligible THEN m.target * (1 - m.haircut) ELSE 0 END AS kept,
       100 * m.held * m.unit AS full_value, 100 * m.unit * m.lot AS lot_value, CEIL(m.held / m.lot) AS held_lots
 WHERE m.k = m.last_k AND NOT m.start_reaches AND NOT m.repeats AND m.unit > 0
OFFSET 0


-- name: fast.window_rows
-- The crypto sold last in each pool, with what its window is worked out from (piece ``window``): no cut, so
-- ``others`` is the margin value of the rest of the pool, which the sale does not change.
SELECT p.*, 100 * (p.d_after + p.pf) AS debt_c, 100 * p.lv_after AS others,
       (1 - p.cost) - p.target * CASE WHEN p.eligible THEN 1 - p.haircut ELSE 0 END AS slope,
       CASE WHEN p.eligible THEN p.target * (1 - p.haircut) ELSE 0 END AS kept,
       100 * p.held * p.unit AS full_value, 100 * p.unit * p.lot AS lot_value, CEIL(p.held / p.lot) AS held_lots
  FROM (
    SELECT c.*, {last_columns}
      FROM part_chosen c
     WHERE NOT c.start_reaches AND c.last IS NOT NULL AND NOT c.limited
    OFFSET 0
  ) AS p
 WHERE p.unit > 0
OFFSET 0


-- name: fast.quantity
COALESCE(trim_scale((s.fixed_crypto ->> %(fc_{i}_symbol)s)::numeric), 0) AS q{i}

-- name: fast.value
ROUND(n.q{i} * %(fc_{i}_unit)s::numeric, 2) AS mv{i}

-- name: fast.margin_and_proceeds
-- (in part_values, from the market value worked out beside it: the expressions repeat it)
{margin} AS lvf{i}, FLOOR(ROUND(n.q{i} * %(fc_{i}_unit)s::numeric, 2) * (1 - n.cost) * 100) * 0.01 AS pf{i}

-- name: fast.after
-- The state after the whole sale of the crypto in this column: debt, and the margin and market value of what is
-- left of the pool.
v.debt - v.cash - ({pf_through}) AS d{i}, v.rest_lv + {lvf_rest} AS lv{i}, v.rest_mv + {mv_rest} AS m{i}

-- name: fast.last_when
WHEN s.q{i} > 0 AND s.d{i} <= s.target * s.lv{i} THEN {i}

-- name: fast.whole_sale
CASE WHEN l.last > {i} AND l.q{i} > 0 THEN jsonb_build_array(jsonb_build_object(
    'asset', %(fc_{i}_symbol)s::text,
    'quantity', CASE WHEN l.q{i}::text LIKE '%%.%%' THEN rtrim(rtrim(l.q{i}::text, '0'), '.') ELSE l.q{i}::text END,
    'lot_size', %(fc_{i}_lot_text)s::text, 'market_value', l.mv{i}::text, 'proceeds', l.pf{i}::text))
    ELSE '[]'::jsonb END

-- name: fast.whole_proceeds
CASE WHEN l.last > {i} THEN l.pf{i} ELSE 0 END

-- name: fast.sold
-- What the plan sells of the crypto in this column, for the volume per asset.
CASE WHEN l.last > {i} THEN l.q{i} WHEN l.last = {i} THEN l.q_last ELSE 0 END AS vq{i},
CASE WHEN l.last > {i} THEN l.mv{i} WHEN l.last = {i} THEN l.sold_last * 0.01 ELSE 0 END AS vmv{i}

-- name: fast.none
-- No crypto priced: no plan is made with the rows.
part_plans AS (SELECT NULL::bigint AS facility_id, NULL::jsonb AS plan, NULL::numeric AS proceeds, NULL::numeric AS ratio
                WHERE false),

-- name: fast.volume
SELECT 'volume', %(fc_{i}_symbol)s::text, NULL, NULL, SUM(p.vq{i}), SUM(p.vmv{i}), NULL, NULL, NULL, NULL
  FROM part_plans p HAVING SUM(p.vq{i}) > 0


-- name: plans
-- The forced-sale plans of a run's rows, from arrays (one statement, one pass).
UPDATE oversight_stressresult r
   SET sale_plan = u.plan::jsonb, sale_proceeds = u.proceeds, ratio_after_sale = u.ratio, shortfall = u.shortfall
  FROM unnest(%(ids)s::bigint[], %(plans)s::text[], %(proceeds)s::numeric[], %(ratios)s::numeric[],
              %(shortfalls)s::numeric[]) AS u(id, plan, proceeds, ratio, shortfall)
 WHERE r.id = u.id


-- name: plan_units_drop
DROP TABLE IF EXISTS pg_temp.stress_plan_units


-- name: plan_units_create
-- Each asset as the sale planner sees it at the scenario's prices: HKD per unit (price × FX, exact; NULL with no
-- price or rate), terms, lot size, and its place in the default sale order (group, crypto rank).
CREATE TEMP TABLE stress_plan_units (symbol varchar(20) PRIMARY KEY, unit numeric, haircut numeric, lim numeric,
                                     eligible boolean, lot numeric, lot_text text, cash boolean, grp int,
                                     crank int) ON COMMIT DROP


-- name: plan_units_insert
INSERT INTO stress_plan_units
SELECT symbol, trim_scale(unit), trim_scale(haircut), trim_scale(lim), eligible, trim_scale(lot), lot_text, cash, grp, crank
  FROM unnest(%(symbol)s::varchar[], %(unit)s::numeric[], %(haircut)s::numeric[], %(lim)s::numeric[],
                     %(eligible)s::boolean[], %(lot)s::numeric[], %(lot_text)s::text[], %(cash)s::boolean[],
                     %(grp)s::int[], %(crank)s::int[]) AS u(symbol, unit, haircut, lim, eligible, lot, lot_text, cash, grp, crank)


-- name: plan_units_analyze
-- What the planner knows of the units (a couple of hundred rows): it then looks each pool's assets up by key.
ANALYZE stress_plan_units


-- name: plans_drop
DROP TABLE IF EXISTS pg_temp.stress_plan_positions


-- name: plan_cut_bound
-- collateral.calculations.LeastSearch._bound at c cents sold, and its right-hand slope's negative: the bound with
-- the cuts in place on what a sale of c cents leaves of D − T·LV (``val``; convex in c) and how fast it falls
-- (``rate``). ``uncut`` is the margin value (cents, no cent rounded down) of the rest of the pool without a limit,
-- ``rest`` its market value (cents); the arrays, the rest's limited positions (position in the sale order, HKD
-- market value, limit, haircut); the others, the position sold. A function so that the statement says it once.
CREATE OR REPLACE FUNCTION pg_temp.stress_cut_bound(
    a_c numeric, a_debt numeric, a_cost numeric, a_target numeric, a_uncut numeric, a_rest numeric,
    a_full numeric, a_eligible boolean, a_haircut numeric, a_lim numeric, a_k bigint, a_ks bigint[],
    a_mvs numeric[], a_lims numeric[], a_haircuts numeric[], OUT val numeric, OUT rate numeric)
LANGUAGE sql IMMUTABLE AS $$
    SELECT a_debt - a_c * (1 - a_cost) - a_target * (a_uncut + COALESCE(cut.v, 0) + own.v),
           (1 - a_cost) - a_target * (COALESCE(cut.r, 0) + own.r)
      FROM (SELECT GREATEST(a_full - a_c + 1, 0) AS l, a_rest + GREATEST(a_full - a_c + 1, 0) AS pool) x
     CROSS JOIN LATERAL (
         SELECT SUM((1 - o.h) * LEAST(100 * o.mv, o.lim * x.pool)) AS v,
                SUM(CASE WHEN o.lim * x.pool <= 100 * o.mv THEN o.lim * (1 - o.h) ELSE 0 END) AS r
           FROM unnest(a_ks, a_mvs, a_lims, a_haircuts) AS o(k, mv, lim, h)
          WHERE o.k > a_k
     ) cut
     CROSS JOIN LATERAL (
         SELECT CASE WHEN NOT a_eligible THEN 0 WHEN a_lim IS NULL THEN (1 - a_haircut) * x.l
                     ELSE (1 - a_haircut) * LEAST(x.l, a_lim * x.pool) END AS v,
                CASE WHEN NOT a_eligible THEN 0 WHEN a_lim IS NULL OR x.l <= a_lim * x.pool THEN 1 - a_haircut
                     ELSE a_lim * (1 - a_haircut) END AS r
     ) own
$$


-- name: plan_positions
-- The forced-sale plan of every row of the run with a call or a sale after the shock, set-based: the rules of
-- collateral.calculations.forced_sale_plan as financing.liquidation plans a sale (the pool's HKD repays first;
-- the rest of the pool, without cash, sold in the policy's order). Two statements: this one, each pool's positions
-- in the sale order with the state after each whole sale valued exactly (concentration cuts worked out at that
-- state's pool value), into a temporary table the next one's planner knows the size of (the run's rows are new:
-- their statistics would say there are none); then ``plans_write``, the last sale's quantity and the plans
-- written. A pool's balances are read through the ledger's index (a pool at a time), not by hashing the ledger.
-- Per position: ``lvf`` its margin value uncut, ``lvl`` the same for a position whose limit may cut it,
-- ``thr`` the pool value below which its cut binds (market value / limit, rounded: only to skip the exact
-- valuation where no cut can bind); the running sums through each position in the sale order, and the state
-- after its whole sale: market value, debt, margin value with the cuts at that state's pool value.
CREATE TEMP TABLE stress_plan_positions ON COMMIT DROP AS
WITH policies AS MATERIALIZED (
    SELECT mp.id, mp.target, COALESCE(%(sale_cost)s::numeric, mp.sale_cost_rate) AS cost,
           ARRAY(SELECT jsonb_array_elements_text(mp.sale_order)) AS sale_order,
           (SELECT COUNT(*) <> COUNT(DISTINCT o) FROM jsonb_array_elements_text(mp.sale_order) o) AS repeats
      FROM financing_marginpolicy mp
),
-- The rows to plan and what they plan with, each found by its key (lateral, OFFSET 0: row by row, not a hash of
-- the run's 100,000 rows and of every facility for the few thousand asked for).
need AS MATERIALIZED (
    SELECT r.id, r.row_ctid, r.debt, p.account_id, mp.target, mp.cost, mp.sale_order, mp.repeats, COALESCE(c.cash, 0) AS cash
      FROM unnest(%(facilities)s::bigint[]) AS u(facility_id)
     CROSS JOIN LATERAL (
         SELECT r.id, r.ctid AS row_ctid, r.debt, f.client_id, f.policy_id FROM oversight_stressresult r
           JOIN financing_facility f ON f.id = r.facility_id
          WHERE r.run_id = %(run)s AND r.facility_id = u.facility_id
         OFFSET 0
     ) r
      JOIN policies mp ON mp.id = COALESCE(r.policy_id, %(default_policy)s)
      LEFT JOIN collateral_collateralpool p ON p.client_id = r.client_id
      LEFT JOIN LATERAL (
          SELECT FLOOR(LEAST(b.amount, GREATEST(r.debt, 0)) * 100) * 0.01 AS cash FROM ledger_balance b
           WHERE b.account_id = p.account_id AND b.instrument_id = 'HKD' AND b.amount > 0
      ) c ON true
),
-- The pool's balances by the ledger's index (a pool at a time, never a hash of the ledger); then each joined to its
-- asset in one hash of the assets.
held AS MATERIALIZED (
    SELECT n.*, hb.instrument_id, hb.held
      FROM need n
      LEFT JOIN LATERAL (
          SELECT b.instrument_id, trim_scale(b.amount) AS held FROM ledger_balance b
           WHERE b.account_id = n.account_id AND b.amount > 0 AND b.instrument_id = ANY(%(plan_symbols)s)
          OFFSET 0
      ) hb ON true
),
positions AS (
    SELECT n.id, n.row_ctid, n.target, n.cost, n.repeats, n.cash, n.debt - n.cash AS d0, h.symbol, n.held, h.unit, h.haircut,
           h.lim, h.eligible, h.lot, h.lot_text, h.unit IS NOT NULL AS priced, h.symbol IS NOT NULL AND h.unit IS NULL AS unpriced,
           COALESCE(ROUND(n.held * h.unit, 2), 0) AS mv,
           CASE WHEN h.unit IS NOT NULL THEN ROW_NUMBER() OVER (
               PARTITION BY n.id, h.unit IS NOT NULL
               ORDER BY COALESCE(array_position(n.sale_order, h.symbol::text), 2147483647), h.grp, h.crank,
                        h.haircut, h.symbol COLLATE "C") END AS k
      FROM held n
      LEFT JOIN stress_plan_units h ON h.symbol = n.instrument_id
),
valued AS (
    SELECT p.*, v.lvf, CASE WHEN p.lim IS NOT NULL THEN v.lvf ELSE 0 END AS lvl,
           CASE WHEN p.eligible AND p.lim IS NULL THEN p.mv * (1 - p.haircut) ELSE 0 END AS lvu,
           CASE WHEN p.lim IS NULL OR NOT p.eligible OR p.mv = 0 THEN NULL WHEN p.lim > 0 THEN p.mv / p.lim
                ELSE 1e30 END AS thr,
           FLOOR(p.mv * (1 - p.cost) * 100) * 0.01 AS pf
      FROM positions p
     CROSS JOIN LATERAL (
         SELECT CASE WHEN p.eligible THEN GREATEST(FLOOR(p.mv * (1 - p.haircut) * 100) * 0.01, 0) ELSE 0 END AS lvf
     ) v
    OFFSET 0  -- each figure computed once, not again in every window function that reads it
),
summed AS (
    SELECT v.*,
           SUM(v.lvf) OVER pool AS lv0, SUM(v.lvl) OVER pool AS lvl0, SUM(v.lvu) OVER pool AS lvu0,
           SUM(v.mv) OVER pool AS m0,
           bool_or(v.unpriced) OVER pool AS skipped, COUNT(v.k) OVER pool AS steps, MAX(v.thr) OVER pool AS thr_all,
           ROW_NUMBER() OVER seq = 1 AS first,
           array_agg(v.k) FILTER (WHERE v.thr IS NOT NULL) OVER pool AS ks,
           array_agg(v.mv) FILTER (WHERE v.thr IS NOT NULL) OVER pool AS mvs,
           array_agg(v.lim) FILTER (WHERE v.thr IS NOT NULL) OVER pool AS lims,
           array_agg(v.haircut) FILTER (WHERE v.thr IS NOT NULL) OVER pool AS haircuts,
           SUM(v.pf) OVER seq AS pf_through, SUM(v.lvf) OVER seq AS lvf_through, SUM(v.lvl) OVER seq AS lvl_through,
           SUM(v.lvu) OVER seq AS lvu_through,
           SUM(v.mv) OVER seq AS mv_through, MAX(v.thr) OVER after AS thr_after
      FROM valued v
    WINDOW pool AS (PARTITION BY v.id),
           seq AS (PARTITION BY v.id ORDER BY v.k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
           after AS (PARTITION BY v.id ORDER BY v.k ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
),
-- The states: before any sale (the same on every row of a pool) and after this position's whole sale. A cut can
-- bind only below its ``thr``; where one may, the limited positions are valued exactly at that pool value.
states AS (
    SELECT s.*, s.m0 - s.mv_through AS m_after, s.d0 - s.pf_through AS d_after, x.lv_start, x.lv_after
      FROM summed s
     CROSS JOIN LATERAL (
         SELECT s.lv0 - CASE WHEN s.m0 < s.thr_all * 1.000000001 + 0.01 THEN s.lvl0 - (
                    SELECT COALESCE(SUM(GREATEST(FLOOR(LEAST(o.mv, o.lim * s.m0) * (1 - o.h) * 100) * 0.01, 0)), 0)
                      FROM unnest(s.mvs, s.lims, s.haircuts) AS o(mv, lim, h)) ELSE 0 END AS lv_start,
                s.lv0 - s.lvf_through - CASE WHEN s.m0 - s.mv_through < s.thr_after * 1.000000001 + 0.01
                    THEN s.lvl0 - s.lvl_through - (
                        SELECT COALESCE(SUM(GREATEST(FLOOR(LEAST(o.mv, o.lim * (s.m0 - s.mv_through)) * (1 - o.h)
                                                           * 100) * 0.01, 0)), 0)
                          FROM unnest(s.ks, s.mvs, s.lims, s.haircuts) AS o(k, mv, lim, h) WHERE o.k > s.k)
                    ELSE 0 END AS lv_after
         OFFSET 0
     ) AS x
)
-- Kept: the rows the plans read (a pool's first row, and the positions it sells), with what they read.
SELECT m.id, m.row_ctid, m.k, m.first, m.symbol, m.lot_text, m.held, m.unit, m.lot, m.haircut, m.lim, m.eligible, m.mv, m.pf,
       m.cash, m.d0, m.target, m.cost, m.repeats, m.steps, m.skipped, m.start_reaches, m.last_k, m.lv_start,
       m.d_after, m.lv_after, m.pf_through, m.lv0, m.lvf_through, m.m0, m.mv_through, m.lvl0, m.lvl_through, m.lvu0,
       m.lvu_through, m.thr_after, m.ks, m.mvs, m.lims, m.haircuts
  FROM (
    SELECT st.*, st.d0 <= st.target * st.lv_start AS start_reaches,
           MIN(st.k) FILTER (WHERE st.k IS NOT NULL AND st.d_after <= st.target * st.lv_after) OVER (PARTITION BY st.id)
               AS last_k
      FROM states st
  ) AS m
 WHERE m.first OR (NOT m.start_reaches AND NOT m.repeats AND m.k <= COALESCE(m.last_k, m.steps))


-- name: plans_write
-- The last sale's quantity, the plans, and the plans written into their rows; returned: the rows left to the Python
-- planner (their ids) and the volume per asset of the plans written here. The last sale's quantity is the exact
-- search of collateral.calculations.LeastSearch: the least whole-lot quantity that reaches the target, each
-- candidate valued exactly (cuts and all), tried in increasing order from a bound below which none reaches, the
-- first that reaches wins (each pool's candidates stop there). First from the window's bound without cuts
-- (``LeastSearch.window``); where a cut bends the ratio past that window, from the bound with the cuts in place
-- (``LeastSearch.cut_floor``: a convex, piecewise-linear bound in the cents sold, its root found by Newton's steps
-- from below, which never pass it and are exact once in the root's piece). A row whose search finds nothing within
-- a few candidates, whose slope is too flat or window too wide, or whose policy names an asset twice, is left to
-- the Python planner (``plans_in_python`` in the run's log).
-- The last sale's quantity, on the row of the position sold last.
WITH searched AS MATERIALIZED (
    SELECT m.id, m.row_ctid, m.k, m.symbol, m.lot_text, m.held, m.mv, m.pf, m.cash, m.d0, m.repeats, m.steps, m.last_k,
           m.start_reaches, m.skipped, m.lv_start, m.d_after, m.lv_after, f.lots, f.pass, f.quantity AS q_last, f.sold * 0.01 AS mv_last, f.proceeds * 0.01 AS pf_last,
           f.debt_after AS debt_last, f.lv_after AS lv_last,
           NOT m.start_reaches AND NOT m.repeats AND m.k <= COALESCE(m.last_k, m.steps) AS sale
      FROM stress_plan_positions m
      LEFT JOIN LATERAL (
          SELECT f.* FROM (
{window}
          ) AS w
          CROSS JOIN LATERAL (
              SELECT t.* FROM (
                  SELECT x.*, (w.debt_c - x.proceeds) * 0.01 AS debt_after,
                         w.fixed + CASE WHEN m.eligible THEN GREATEST(FLOOR(LEAST(x.left_value * 0.01,
                             COALESCE(m.lim * x.pool, x.left_value * 0.01)) * (1 - m.haircut) * 100) * 0.01, 0) ELSE 0 END
                         + CASE WHEN m.mvs IS NULL THEN 0
                                WHEN x.pool >= m.thr_after * 1.000000001 + 0.01 THEN w.lvl_after
                                ELSE (SELECT COALESCE(SUM(GREATEST(FLOOR(LEAST(o.mv, o.lim * x.pool) * (1 - o.h) * 100)
                                                                 * 0.01, 0)), 0)
                                        FROM unnest(m.ks, m.mvs, m.lims, m.haircuts) AS o(k, mv, lim, h)
                                       WHERE o.k > m.k) END AS lv_after
                    FROM (
                      SELECT q.lots, q.pass, q.quantity, q.sold, FLOOR(q.sold * (1 - m.cost)) AS proceeds, q.left_value,
                             w.rest + q.left_value * 0.01 AS pool
                        FROM (
                          SELECT g.lots, g.pass, LEAST(g.lots * m.lot, m.held) AS quantity,
                                 ROUND(100 * LEAST(g.lots * m.lot, m.held) * m.unit) AS sold,
                                 ROUND(100 * (m.held - LEAST(g.lots * m.lot, m.held)) * m.unit) AS left_value
                            FROM (
                              SELECT CASE WHEN w.by_cents
                                          THEN LEAST(GREATEST(CEIL((w.cents_low + n - 0.5) / w.lot_value), 1), w.held_lots)
                                          ELSE w.lots_low + n END AS lots, 1 AS pass
                                FROM generate_series(0, w.width - 1) AS n
                              UNION ALL
                              -- The second pass, tried only when the window holds no reaching quantity.
                              SELECT CASE WHEN w.by_cents
                                          THEN LEAST(GREATEST(CEIL((cf.start + n - 0.5) / w.lot_value), 1), w.held_lots)
                                          ELSE LEAST(GREATEST(FLOOR((cf.start - 0.5) / w.lot_value), w.lots_low) + n,
                                                     w.held_lots) END, 2
                                FROM (
                                  WITH RECURSIVE step AS (
                                      SELECT 0 AS i, lo.c, b.val, b.rate
                                        FROM (SELECT CASE WHEN w.by_cents THEN w.cents_low ELSE 0 END::numeric AS c) lo
                                       CROSS JOIN LATERAL pg_temp.stress_cut_bound(
                                           lo.c, w.debt_c, m.cost, m.target, w.uncut, 100 * w.rest, w.full_value,
                                           m.eligible, m.haircut, m.lim, m.k, m.ks, m.mvs, m.lims, m.haircuts) b
                                       CROSS JOIN LATERAL pg_temp.stress_cut_bound(
                                           ROUND(w.full_value), w.debt_c, m.cost, m.target, w.uncut, 100 * w.rest,
                                           w.full_value, m.eligible, m.haircut, m.lim, m.k, m.ks, m.mvs, m.lims,
                                           m.haircuts) e
                                       WHERE (m.mvs IS NOT NULL OR m.lim IS NOT NULL) AND ROUND(w.full_value) > lo.c
                                         AND b.val > 0 AND e.val <= 0
                                    UNION ALL
                                      SELECT st.i + 1, nx.c, b.val, b.rate
                                        FROM step st
                                       CROSS JOIN LATERAL (SELECT st.c + st.val / st.rate AS c) nx
                                       CROSS JOIN LATERAL pg_temp.stress_cut_bound(
                                           nx.c, w.debt_c, m.cost, m.target, w.uncut, 100 * w.rest, w.full_value,
                                           m.eligible, m.haircut, m.lim, m.k, m.ks, m.mvs, m.lims, m.haircuts) b
                                       WHERE st.i < 12 AND st.val > 0 AND st.rate > 0
                                  )
                                  SELECT CEIL(MAX(step.c)) - 2 AS start FROM step HAVING COUNT(*) > 0
                                ) AS cf
                               CROSS JOIN generate_series(0, %(second_candidates)s - 1) AS n
                              OFFSET 0
                            ) AS g
                          OFFSET 0
                        ) AS q
                      OFFSET 0
                    ) AS x
                  OFFSET 0
              ) AS t
               WHERE t.debt_after <= m.target * t.lv_after
               LIMIT 1
          ) AS f
      ) f ON true
     WHERE m.first OR (NOT m.start_reaches AND NOT m.repeats AND m.k <= COALESCE(m.last_k, m.steps))
),
flagged AS (
    SELECT s.*, NOT s.repeats AND NOT COALESCE(bool_or(s.sale AND s.k = s.last_k AND s.lots IS NULL) OVER (PARTITION BY s.id), false)
               AS planned,
           CASE WHEN s.k = s.last_k THEN s.q_last ELSE s.held END AS quantity,
           CASE WHEN s.k = s.last_k THEN s.mv_last ELSE s.mv END AS sold_mv,
           CASE WHEN s.k = s.last_k THEN s.pf_last ELSE s.pf END AS sold_pf
      FROM searched s
),
outcome AS (
    SELECT f.id, f.row_ctid, bool_and(f.planned) AS planned, MIN(f.cash) AS cash, bool_or(f.start_reaches) AS start_reaches,
           MIN(f.steps) AS steps, MIN(f.last_k) AS last_k, bool_or(f.skipped) AS skipped, MIN(f.d0) AS d0,
           MIN(f.lv_start) AS lv_start, COALESCE(SUM(f.sold_pf) FILTER (WHERE f.sale), 0) AS proceeds,
           jsonb_agg(jsonb_build_object(
               'asset', f.symbol,
               'quantity', CASE WHEN f.quantity::text LIKE '%%.%%' THEN rtrim(rtrim(f.quantity::text, '0'), '.')
                                ELSE f.quantity::text END,
               'lot_size', f.lot_text, 'market_value', f.sold_mv::text, 'proceeds', f.sold_pf::text) ORDER BY f.k)
               FILTER (WHERE f.sale) AS plan,
           bool_or(f.k = f.steps AND (f.last_k IS NULL OR f.k <> f.last_k OR f.q_last >= f.held)) FILTER (WHERE f.sale)
               AS last_whole,
           MIN(f.d_after) FILTER (WHERE f.k = f.steps) AS d_end, MIN(f.lv_after) FILTER (WHERE f.k = f.steps) AS lv_end,
           MIN(f.debt_last) FILTER (WHERE f.k = f.last_k) AS debt_last, MIN(f.lv_last) FILTER (WHERE f.k = f.last_k) AS lv_last
      FROM flagged f
     GROUP BY f.id, f.row_ctid
),
plans AS (
    SELECT o.id, o.row_ctid, o.planned,
           CASE WHEN o.cash > 0 THEN jsonb_build_array(jsonb_build_object(
                    'asset', 'HKD', 'quantity', o.cash::text, 'lot_size', '0.01', 'market_value', o.cash::text,
                    'proceeds', o.cash::text)) ELSE '[]'::jsonb END || COALESCE(o.plan, '[]'::jsonb) AS plan,
           o.cash + o.proceeds AS proceeds,
           CASE WHEN o.debt_after <= 0 THEN 0
                WHEN o.lv_after <= 0 THEN NULL
                ELSE ROUND(o.debt_after::numeric(40, 20) / o.lv_after, 8) END AS ratio,
           CASE WHEN o.sold_all AND o.debt_after > 0 THEN o.debt_after ELSE 0 END AS shortfall
      FROM (
        SELECT o.*,
               CASE WHEN o.start_reaches OR o.steps = 0 THEN o.d0 WHEN o.last_k IS NULL THEN o.d_end
                    ELSE o.debt_last END AS debt_after,
               CASE WHEN o.start_reaches OR o.steps = 0 THEN o.lv_start WHEN o.last_k IS NULL THEN o.lv_end
                    ELSE o.lv_last END AS lv_after,
               CASE WHEN o.start_reaches THEN o.steps = 0
                    WHEN o.last_k IS NULL THEN true
                    ELSE COALESCE(o.last_whole, false) END
               AND NOT COALESCE(o.skipped, false) AS sold_all
          FROM outcome o
        OFFSET 0
      ) AS o
),
written AS (
    UPDATE oversight_stressresult r
       SET sale_plan = p.plan, sale_proceeds = p.proceeds, ratio_after_sale = p.ratio, shortfall = p.shortfall
      FROM plans p
     WHERE r.ctid = p.row_ctid AND p.planned
)
SELECT p.id, NULL::varchar, NULL::numeric, NULL::numeric FROM plans p WHERE NOT p.planned
UNION ALL
SELECT NULL, f.symbol, SUM(f.quantity), SUM(f.sold_mv) FROM flagged f WHERE f.sale AND f.planned GROUP BY f.symbol
UNION ALL
SELECT NULL, NULL, COUNT(*), NULL FROM flagged f WHERE f.pass = 2


-- name: plan_totals
-- The firm's figures of the plans: only the rows with a call or a sale after the shock have one. What the sales
-- would repay is their proceeds, never more than the debt they repay.
SELECT COALESCE(SUM(sale_proceeds), 0), COALESCE(SUM(shortfall), 0),
       COALESCE(SUM(LEAST(debt, sale_proceeds)) FILTER (WHERE sale_proceeds > 0), 0)
  FROM oversight_stressresult
 WHERE run_id = %(run)s AND status_after IN ('margin_call', 'forced_sale')
