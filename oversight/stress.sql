-- The stress run's statement, run by oversight/stress.py through financing.monitoring.sweep.valuation_of_book_run:
-- the sweep's own valuation of every open facility (the valuation piece, at the scenario's shocked unit values), and one
-- row per facility into the run's results. It writes nothing else: the margin states it reads are the figures
-- "before" (as last swept), and the repayment that cures is the margin-call ladder's own function.

-- name: results
WITH {valuation}
INSERT INTO oversight_stressresult (run_id, facility_id, market_value_before, margin_value_before, debt_before,
                                    ratio_before, status_before, market_value, margin_value, debt, ratio_after,
                                    status_after, repayment_to_cure, sale_plan, sale_proceeds, shortfall)
SELECT %(run)s, r.facility_id, r.old_market_value, r.old_margin_value, r.old_debt, r.old_ratio,
       COALESCE(r.old_status, ''), r.market_value, r.margin_value, r.debt, r.margin_ratio, r.status,
       CASE WHEN r.status IN ('margin_call', 'forced_sale')
            THEN cure_repayment(r.debt, r.margin_value, COALESCE(mp.target, %(default_target)s)) ELSE 0 END,
       '[]'::jsonb, 0, 0
  FROM result r
  LEFT JOIN financing_marginpolicy mp ON mp.id = r.policy_id


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


-- name: plans_drop
DROP TABLE IF EXISTS pg_temp.stress_plan_start, pg_temp.stress_plan_positions, pg_temp.stress_plans


-- name: plan_start
-- The forced-sale plan of every row of the run with a call or a sale after the shock, set-based: the rules of
-- collateral.calculations.forced_sale_plan as financing.liquidation plans a sale (the pool's HKD repays first;
-- the rest of the pool, without cash, sold in the policy's order), for every pool in which no concentration cut
-- binds at any state the planner looks at. In such a pool every position's margin value is its own (market
-- value × (1 − haircut), down to the cent), so the positions sold whole and the state before the last one are
-- running sums in the sale order, and the last one's quantity is the exact search in cents of
-- collateral.calculations.LeastSearch: its window of candidates, the least that reaches the target. ``planned``
-- is false for the rows left to the Python planner: a cut may bind, the slope is too flat or the window too
-- wide (docs/stress-tests.md). Three statements, each into a temporary table the next one's planner knows the
-- size of (the run's rows are new: their statistics would say there are none; a table never analysed is
-- estimated from its size on disk, and analysing them costs more than it saves).
-- First the rows and their policies, and the pool's HKD that repays first.
CREATE TEMP TABLE stress_plan_start ON COMMIT DROP AS
WITH need AS MATERIALIZED (
    SELECT r.id, r.debt, p.account_id, mp.target,
           COALESCE(%(sale_cost)s::numeric, mp.sale_cost_rate) AS cost,
           ARRAY(SELECT jsonb_array_elements_text(mp.sale_order)) AS sale_order,
           (SELECT COUNT(*) <> COUNT(DISTINCT o) FROM jsonb_array_elements_text(mp.sale_order) o) AS repeats
      FROM oversight_stressresult r
      JOIN financing_facility f ON f.id = r.facility_id
      JOIN financing_marginpolicy mp ON mp.id = COALESCE(f.policy_id, %(default_policy)s)
      LEFT JOIN collateral_collateralpool p ON p.client_id = f.client_id
     WHERE r.run_id = %(run)s AND r.status_after IN ('margin_call', 'forced_sale')
)
SELECT n.*, COALESCE(c.cash, 0) AS cash, n.debt - COALESCE(c.cash, 0) AS d0
  FROM need n
  LEFT JOIN LATERAL (
      SELECT FLOOR(LEAST(b.amount, GREATEST(n.debt, 0)) * 100) * 0.01 AS cash FROM ledger_balance b
       WHERE b.account_id = n.account_id AND b.instrument_id = 'HKD' AND b.amount > 0
  ) c ON true


-- name: plan_positions
-- Then each pool's positions in the sale order, with running sums: market value, proceeds and margin value
-- without cuts before and after each position's whole sale.
CREATE TEMP TABLE stress_plan_positions ON COMMIT DROP AS
WITH positions AS (
    SELECT s.id, s.target, s.cost, s.d0, b.instrument_id AS symbol, trim_scale(b.amount) AS held, u.unit, u.haircut,
           u.lim, u.eligible, u.lot, u.lot_text, u.unit IS NOT NULL AS priced,
           COALESCE(ROUND(b.amount * u.unit, 2), 0) AS mv,
           CASE WHEN u.unit IS NOT NULL THEN ROW_NUMBER() OVER (
               PARTITION BY s.id, u.unit IS NOT NULL
               ORDER BY COALESCE(array_position(s.sale_order, b.instrument_id::text), 2147483647), u.grp, u.crank,
                        u.haircut, b.instrument_id COLLATE "C") END AS k
      FROM stress_plan_start s
      JOIN ledger_balance b ON b.account_id = s.account_id AND b.amount > 0
      JOIN stress_plan_units u ON u.symbol = b.instrument_id AND NOT u.cash
),
valued AS (
    SELECT p.*,
           CASE WHEN p.eligible THEN GREATEST(FLOOR(p.mv * (1 - p.haircut) * 100) * 0.01, 0) ELSE 0 END AS lvf,
           FLOOR(p.mv * (1 - p.cost) * 100) * 0.01 AS pf
      FROM positions p
)
SELECT v.*,
       SUM(v.lvf) OVER pool AS lv0, SUM(v.mv) OVER pool AS m0, bool_or(NOT v.priced) OVER pool AS skipped,
       COUNT(v.k) OVER pool AS steps,
       SUM(v.pf) OVER seq AS pf_through, SUM(v.lvf) OVER seq AS lvf_through, SUM(v.mv) OVER seq AS mv_through
  FROM valued v
WINDOW pool AS (PARTITION BY v.id),
       seq AS (PARTITION BY v.id ORDER BY v.k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)


-- name: sale_plans
-- Last, the plans. The state after each whole sale (and at the start) is valued exactly as the pool is valued,
-- concentration cuts and all; the last sale's quantity is the exact search of
-- collateral.calculations.LeastSearch: the window of candidates (in cents sold, or in lots) below which the
-- target cannot be reached, each candidate valued exactly, the least that reaches it.
CREATE TEMP TABLE stress_plans ON COMMIT DROP AS
WITH points AS (
    SELECT DISTINCT ON (p.id) p.id, 0::bigint AS k, p.m0 AS m_after, p.d0 AS d_after, p.target, p.steps, p.skipped
      FROM stress_plan_positions p
    UNION ALL
    SELECT p.id, p.k, p.m0 - p.mv_through, p.d0 - p.pf_through, p.target, p.steps, p.skipped
      FROM stress_plan_positions p WHERE p.k IS NOT NULL
),
states AS MATERIALIZED (
    SELECT s.id, s.k, s.m_after, s.d_after, s.steps, s.skipped,
           s.d_after <= s.target * s.lv_after AS reaches, s.lv_after
      FROM (
        SELECT pt.id, pt.k, MAX(pt.m_after) AS m_after, MAX(pt.d_after) AS d_after, MAX(pt.target) AS target,
               MAX(pt.steps) AS steps, bool_or(pt.skipped) AS skipped,
               COALESCE(SUM(CASE WHEN i.lim IS NULL OR NOT i.eligible THEN i.lvf ELSE GREATEST(
                   FLOOR(LEAST(i.mv, i.lim * pt.m_after) * (1 - i.haircut) * 100) * 0.01, 0) END), 0) AS lv_after
          FROM points pt
          LEFT JOIN stress_plan_positions i ON i.id = pt.id AND (i.k IS NULL OR i.k > pt.k)
         GROUP BY pt.id, pt.k
      ) AS s
),
-- The last step: the first position whose whole sale reaches the target (none: everything is sold).
pools AS MATERIALIZED (
    SELECT s.id, bool_or(s.reaches) FILTER (WHERE s.k = 0) AS start_reaches,
           MIN(s.k) FILTER (WHERE s.k > 0 AND s.reaches) AS last_k, MAX(s.steps) AS steps,
           bool_or(s.skipped) AS skipped
      FROM states s GROUP BY s.id
),
-- The rest of the pool during the last sale: its margin value without a limit (fixed), and the positions with
-- one (their cut moves with the pool's value).
others AS (
    SELECT i.id, COALESCE(SUM(i.lvf) FILTER (WHERE i.lim IS NULL), 0) AS fixed,
           array_agg(i.mv) FILTER (WHERE i.lim IS NOT NULL AND i.eligible) AS mvs,
           array_agg(i.lim) FILTER (WHERE i.lim IS NOT NULL AND i.eligible) AS lims,
           array_agg(i.haircut) FILTER (WHERE i.lim IS NOT NULL AND i.eligible) AS haircuts
      FROM stress_plan_positions i JOIN pools pl ON pl.id = i.id
     WHERE pl.last_k IS NOT NULL AND (i.k IS NULL OR i.k > pl.last_k)
     GROUP BY i.id
),
search AS (
    SELECT c.id, c.held, c.unit, c.lot, c.haircut, c.eligible, c.lim, c.cost, c.target,
           100 * (c.d0 - c.pf_through + c.pf) AS debt, 100 * (c.lv0 - c.lvf_through) AS others,
           c.m0 - c.mv_through AS rest,
           (1 - c.cost) - c.target * CASE WHEN c.eligible THEN 1 - c.haircut ELSE 0 END AS slope,
           CASE WHEN c.eligible THEN c.target * (1 - c.haircut) ELSE 0 END AS kept,
           100 * c.held * c.unit AS full_value, 100 * c.unit * c.lot AS lot_value, CEIL(c.held / c.lot) AS held_lots
      FROM stress_plan_positions c JOIN pools pl ON pl.id = c.id
     WHERE c.k = pl.last_k AND NOT pl.start_reaches
),
bounds AS MATERIALIZED (
    SELECT s.*,
           GREATEST(FLOOR((s.debt - s.target * s.others - s.kept * (s.full_value + 1)) / s.slope) - 1, 0) AS cents_low,
           CEIL((s.debt + 1 - s.target * s.others + CASE WHEN s.eligible THEN s.target ELSE 0 END
                 - s.kept * (s.full_value - s.lot_value)) / s.slope) + 1 AS cents_high_raw
      FROM search s
     WHERE s.slope >= %(min_slope)s AND s.unit > 0
),
windows AS MATERIALIZED (
    SELECT w.*, w.cents_high - w.cents_low <= w.lots_high - w.lots_low AS by_cents,
           CASE WHEN w.cents_high - w.cents_low <= w.lots_high - w.lots_low THEN w.cents_low ELSE w.lots_low END AS g_low,
           CASE WHEN w.cents_high - w.cents_low <= w.lots_high - w.lots_low THEN w.cents_high ELSE w.lots_high END AS g_high,
           COALESCE(o.fixed, 0) AS fixed, o.mvs, o.lims, o.haircuts
      FROM (
        SELECT l.*, GREATEST(LEAST(CEIL((l.cents_high - 0.5) / l.lot_value) + 1, l.held_lots), l.lots_low) AS lots_high
          FROM (
            SELECT b.*, GREATEST(b.cents_high_raw, b.cents_low) AS cents_high,
                   GREATEST(FLOOR((b.cents_low - 0.5) / b.lot_value), 1) AS lots_low
              FROM bounds b
          ) AS l
      ) AS w
      LEFT JOIN others o ON o.id = w.id
     WHERE LEAST(w.cents_high - w.cents_low, w.lots_high - w.lots_low) + 1 <= %(max_candidates)s
),
candidates AS (
    SELECT w.id, w.held, w.unit, w.lot, w.haircut, w.eligible, w.lim, w.cost, w.target, w.debt, w.rest, w.fixed,
           w.mvs, w.lims, w.haircuts, LEAST(q.lots * w.lot, w.held) AS quantity, q.lots
      FROM windows w
     CROSS JOIN LATERAL generate_series(w.g_low, w.g_high) AS g(n)
     CROSS JOIN LATERAL (
         SELECT CASE WHEN w.by_cents THEN LEAST(GREATEST(CEIL((g.n - 0.5) / w.lot_value), 1), w.held_lots)
                     ELSE g.n END AS lots
     ) AS q
    OFFSET 0
),
tried AS (
    SELECT t.id, t.lots, t.quantity, t.sold, t.proceeds, t.debt_after, t.lv_after,
           t.debt_after <= t.target * t.lv_after AS reaches
      FROM (
        SELECT v.*, (v.debt - v.proceeds) * 0.01 AS debt_after,
               v.fixed + CASE WHEN v.eligible THEN GREATEST(FLOOR(LEAST(v.left_value * 0.01,
                   COALESCE(v.lim * v.pool, v.left_value * 0.01)) * (1 - v.haircut) * 100) * 0.01, 0)
                   ELSE 0 END
               + CASE WHEN v.mvs IS NULL THEN 0 ELSE COALESCE((
                     SELECT SUM(GREATEST(FLOOR(LEAST(o.mv, o.lim * v.pool) * (1 - o.haircut) * 100)
                                         * 0.01, 0))
                       FROM unnest(v.mvs, v.lims, v.haircuts) AS o(mv, lim, haircut)), 0) END AS lv_after
          FROM (
            SELECT u.*, FLOOR(u.sold * (1 - u.cost)) AS proceeds, u.rest + u.left_value * 0.01 AS pool
              FROM (
                SELECT c.*, ROUND(100 * c.quantity * c.unit) AS sold, ROUND(100 * (c.held - c.quantity) * c.unit) AS left_value
                  FROM candidates c OFFSET 0
              ) AS u
            OFFSET 0
          ) AS v
        OFFSET 0
      ) AS t
),
least AS MATERIALIZED (
    SELECT DISTINCT ON (t.id) t.id, t.quantity, t.sold * 0.01 AS mv, t.proceeds * 0.01 AS pf, t.debt_after, t.lv_after
      FROM tried t WHERE t.reaches
     ORDER BY t.id, t.lots
),
-- Each row's sales: whole positions before the last step, the least quantity at it.
sales AS (
    SELECT c.id, c.k, c.symbol, c.lot_text,
           CASE WHEN c.k = pl.last_k THEN l.quantity ELSE c.held END AS quantity,
           CASE WHEN c.k = pl.last_k THEN l.mv ELSE c.mv END AS mv,
           CASE WHEN c.k = pl.last_k THEN l.pf ELSE c.pf END AS pf,
           c.k = pl.last_k AND l.id IS NULL AS unsearched,
           c.k = pl.steps AND (pl.last_k IS NULL OR c.k <> pl.last_k OR l.quantity >= c.held) AS last_whole
      FROM stress_plan_positions c
      JOIN pools pl ON pl.id = c.id
      LEFT JOIN least l ON l.id = c.id AND c.k = pl.last_k
     WHERE NOT pl.start_reaches AND c.k <= COALESCE(pl.last_k, pl.steps)
),
per_sales AS (
    SELECT s.id, bool_or(s.unsearched) AS unsearched, SUM(s.pf) AS proceeds,
           jsonb_agg(jsonb_build_object(
               'asset', s.symbol,
               'quantity', CASE WHEN s.quantity::text LIKE '%%.%%' THEN rtrim(rtrim(s.quantity::text, '0'), '.')
                                ELSE s.quantity::text END,
               'lot_size', s.lot_text, 'market_value', s.mv::text, 'proceeds', s.pf::text) ORDER BY s.k) AS plan,
           bool_or(s.last_whole) AS last_whole
      FROM sales s GROUP BY s.id
),
outcome AS (
    SELECT st.id, st.cash, st.d0, st.repeats, ps.unsearched, ps.plan, COALESCE(ps.proceeds, 0) AS proceeds,
           CASE WHEN pl.id IS NULL THEN st.d0
                WHEN pl.start_reaches THEN s0.d_after
                WHEN pl.last_k IS NULL THEN se.d_after
                ELSE l.debt_after END AS debt_after,
           CASE WHEN pl.id IS NULL THEN 0
                WHEN pl.start_reaches THEN s0.lv_after
                WHEN pl.last_k IS NULL THEN se.lv_after
                ELSE l.lv_after END AS lv_after,
           CASE WHEN pl.id IS NULL THEN true
                WHEN pl.start_reaches THEN pl.steps = 0
                WHEN pl.last_k IS NULL THEN true
                ELSE COALESCE(ps.last_whole, false) END
           AND NOT COALESCE(pl.skipped, false) AS sold_all
      FROM stress_plan_start st
      LEFT JOIN pools pl ON pl.id = st.id
      LEFT JOIN states s0 ON s0.id = st.id AND s0.k = 0
      LEFT JOIN states se ON se.id = st.id AND se.k = pl.steps AND pl.last_k IS NULL
      LEFT JOIN per_sales ps ON ps.id = st.id
      LEFT JOIN least l ON l.id = st.id
)
SELECT o.id, NOT o.repeats AND NOT COALESCE(o.unsearched, false) AS planned,
       CASE WHEN o.cash > 0 THEN jsonb_build_array(jsonb_build_object(
                'asset', 'HKD', 'quantity', o.cash::text, 'lot_size', '0.01', 'market_value', o.cash::text,
                'proceeds', o.cash::text)) ELSE '[]'::jsonb END || COALESCE(o.plan, '[]'::jsonb) AS plan,
       o.cash + o.proceeds AS proceeds,
       CASE WHEN o.debt_after <= 0 THEN 0
            WHEN o.lv_after <= 0 THEN NULL
            ELSE ROUND(o.debt_after::numeric(40, 20) / o.lv_after, 8) END AS ratio,
       CASE WHEN o.sold_all AND o.debt_after > 0 THEN o.debt_after ELSE 0 END AS shortfall
  FROM outcome o


-- name: plans_write
-- The plans made in SQL into their rows.
UPDATE oversight_stressresult r
   SET sale_plan = p.plan, sale_proceeds = p.proceeds, ratio_after_sale = p.ratio, shortfall = p.shortfall
  FROM stress_plans p
 WHERE r.id = p.id AND p.planned


-- name: plans_unplanned
SELECT id FROM stress_plans WHERE NOT planned


-- name: sale_volume
-- The volume to sell per asset over every plan of the run.
SELECT e ->> 'asset', SUM((e ->> 'quantity')::numeric), SUM((e ->> 'market_value')::numeric)
  FROM oversight_stressresult r CROSS JOIN LATERAL jsonb_array_elements(r.sale_plan) e
 WHERE r.run_id = %(run)s AND e ->> 'asset' <> 'HKD'
 GROUP BY 1
