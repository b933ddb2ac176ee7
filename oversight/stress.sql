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
SELECT * FROM unnest(%(symbol)s::varchar[], %(unit)s::numeric[], %(haircut)s::numeric[], %(lim)s::numeric[],
                     %(eligible)s::boolean[], %(lot)s::numeric[], %(lot_text)s::text[], %(cash)s::boolean[],
                     %(grp)s::int[], %(crank)s::int[])


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
-- size of (the run's rows are new: their statistics would say there are none).
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


-- name: plan_analyze
ANALYZE stress_plan_start, stress_plan_positions


-- name: plan_positions
-- Then each pool's positions in the sale order, with the state before each sale and after it whole.
CREATE TEMP TABLE stress_plan_positions ON COMMIT DROP AS
WITH positions AS (
    SELECT s.id, s.target, s.cost, s.d0, b.instrument_id AS symbol, b.amount AS held, u.unit, u.haircut, u.lim,
           u.eligible, u.lot, u.lot_text, u.unit IS NOT NULL AS priced,
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
),
running AS (
    SELECT v.*,
           SUM(v.lvf) OVER pool AS lv0, SUM(v.mv) OVER pool AS m0, bool_or(NOT v.priced) OVER pool AS skipped,
           COUNT(v.k) OVER pool AS steps,
           SUM(v.pf) OVER seq - v.pf AS pf_before, SUM(v.lvf) OVER seq - v.lvf AS lv_before,
           SUM(v.mv) OVER seq - v.mv AS mv_before
      FROM valued v
    WINDOW pool AS (PARTITION BY v.id),
           seq AS (PARTITION BY v.id ORDER BY v.k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
states AS (
    SELECT r.*, r.d0 - r.pf_before AS d_k, r.lv0 - r.lv_before AS lv_k, r.m0 - r.mv_before AS m_k,
           r.d0 <= r.target * r.lv0 AS start_reaches,
           r.d0 - r.pf_before - r.pf <= r.target * (r.lv0 - r.lv_before - r.lvf) AS reaches_after
      FROM running r
),
-- The last step: the first position whose whole sale reaches the target (none: everything is sold).
last_step AS (
    SELECT s.*, MIN(s.k) FILTER (WHERE s.reaches_after) OVER (PARTITION BY s.id) AS last_k FROM states s
),
steps AS (
    SELECT l.*, CASE WHEN l.start_reaches THEN 0 ELSE COALESCE(l.last_k, l.steps) END AS done_k FROM last_step l
),
-- No cut binds: each position with a limit is within it at the smallest pool it sees — the pool when its own
-- sale starts if it is sold, the pool with every planned sale made whole otherwise.
checked AS (
    SELECT s.*,
           s.lim IS NULL OR NOT s.eligible OR s.mv <= s.lim * CASE WHEN s.k <= s.done_k THEN s.m_k
               ELSE s.m0 - COALESCE(SUM(s.mv) FILTER (WHERE s.k <= s.done_k) OVER (PARTITION BY s.id), 0) END
               AS within
      FROM steps s
)
SELECT * FROM checked


-- name: sale_plans
-- Last, the exact search for the last step (collateral.calculations.LeastSearch), every figure in cents, and the
-- plans.
CREATE TEMP TABLE stress_plans ON COMMIT DROP AS
WITH search AS (
    SELECT c.id, c.held, c.unit, c.lot, c.haircut, c.eligible, c.cost, c.target,
           100 * c.d_k AS debt, 100 * (c.lv_k - c.lvf) AS others,
           (1 - c.cost) - c.target * CASE WHEN c.eligible THEN 1 - c.haircut ELSE 0 END AS slope,
           CASE WHEN c.eligible THEN c.target * (1 - c.haircut) ELSE 0 END AS kept,
           100 * c.held * c.unit AS full_value, 100 * c.unit * c.lot AS lot_value, CEIL(c.held / c.lot) AS held_lots
      FROM stress_plan_positions c
     WHERE c.k = c.done_k AND c.k = c.last_k AND NOT c.start_reaches
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
           CASE WHEN w.cents_high - w.cents_low <= w.lots_high - w.lots_low THEN w.cents_high ELSE w.lots_high END AS g_high
      FROM (
        SELECT l.*, GREATEST(LEAST(CEIL((l.cents_high - 0.5) / l.lot_value) + 1, l.held_lots), l.lots_low) AS lots_high
          FROM (
            SELECT b.*, GREATEST(b.cents_high_raw, b.cents_low) AS cents_high,
                   GREATEST(FLOOR((b.cents_low - 0.5) / b.lot_value), 1) AS lots_low
              FROM bounds b
          ) AS l
      ) AS w
     WHERE LEAST(w.cents_high - w.cents_low, w.lots_high - w.lots_low) + 1 <= %(max_candidates)s
),
candidates AS (
    SELECT w.id, w.held, w.unit, w.lot, w.haircut, w.eligible, w.cost, w.target, w.debt, w.others,
           CASE WHEN w.by_cents THEN LEAST(GREATEST(CEIL((g.n - 0.5) / w.lot_value), 1), w.held_lots) ELSE g.n END
               AS lots
      FROM windows w CROSS JOIN LATERAL generate_series(w.g_low, w.g_high) AS g(n)
),
tried AS (
    SELECT t.*, FLOOR(t.sold * (1 - t.cost)) AS proceeds,
           t.debt - FLOOR(t.sold * (1 - t.cost))
               <= t.target * (t.others + CASE WHEN t.eligible THEN FLOOR(t.left_value * (1 - t.haircut)) ELSE 0 END)
               AS reaches,
           CASE WHEN t.eligible THEN FLOOR(t.left_value * (1 - t.haircut)) ELSE 0 END AS kept_cents
      FROM (
        SELECT c.*, LEAST(c.lots * c.lot, c.held) AS quantity, ROUND(100 * LEAST(c.lots * c.lot, c.held) * c.unit) AS sold,
               ROUND(100 * (c.held - LEAST(c.lots * c.lot, c.held)) * c.unit) AS left_value
          FROM candidates c
      ) AS t
),
least AS MATERIALIZED (
    SELECT DISTINCT ON (t.id) t.id, t.quantity, t.sold * 0.01 AS mv, t.proceeds * 0.01 AS pf,
           (t.debt - t.proceeds) * 0.01 AS debt_after, (t.others + t.kept_cents) * 0.01 AS lv_after
      FROM tried t WHERE t.reaches
     ORDER BY t.id, t.lots
),
-- Each row's sales: whole positions before the last step, the least quantity at it.
sales AS (
    SELECT c.id, c.k, c.symbol, c.lot_text,
           CASE WHEN c.k = c.last_k THEN l.quantity ELSE c.held END AS quantity,
           CASE WHEN c.k = c.last_k THEN l.mv ELSE c.mv END AS mv,
           CASE WHEN c.k = c.last_k THEN l.pf ELSE c.pf END AS pf,
           c.k = c.last_k AND l.id IS NULL AS unsearched,
           c.k = c.steps AND (c.k <> c.last_k OR l.quantity >= c.held) AS last_whole
      FROM stress_plan_positions c
      LEFT JOIN least l ON l.id = c.id AND c.k = c.last_k
     WHERE c.k <= c.done_k
),
per_pool AS (
    SELECT c.id, bool_and(c.within) AS within, bool_or(c.skipped) AS skipped, MAX(c.steps) AS steps,
           bool_or(c.start_reaches) AS start_reaches, MAX(c.last_k) AS last_k, MAX(c.lv0) AS lv0
      FROM stress_plan_positions c GROUP BY c.id
),
per_sales AS (
    SELECT s.id, bool_or(s.unsearched) AS unsearched, SUM(s.pf) AS proceeds, SUM(s.mv) AS mv,
           jsonb_agg(jsonb_build_object(
               'asset', s.symbol,
               'quantity', CASE WHEN s.quantity::text LIKE '%%.%%' THEN rtrim(rtrim(s.quantity::text, '0'), '.')
                                ELSE s.quantity::text END,
               'lot_size', s.lot_text, 'market_value', s.mv::text, 'proceeds', s.pf::text) ORDER BY s.k) AS plan,
           bool_or(s.last_whole) AS last_whole
      FROM sales s GROUP BY s.id
),
outcome AS (
    SELECT st.id, st.cash, st.d0, st.repeats, pp.within, pp.skipped, pp.steps, pp.start_reaches, pp.last_k,
           ps.unsearched, ps.plan, COALESCE(ps.proceeds, 0) AS proceeds,
           CASE WHEN pp.last_k IS NOT NULL AND NOT pp.start_reaches THEN l.debt_after
                ELSE st.d0 - COALESCE(ps.proceeds, 0) END AS debt_after,
           CASE WHEN pp.last_k IS NOT NULL AND NOT pp.start_reaches THEN l.lv_after
                WHEN pp.start_reaches THEN pp.lv0 ELSE 0 END AS lv_after,
           CASE WHEN pp.id IS NULL THEN true
                WHEN pp.start_reaches THEN pp.steps = 0
                WHEN pp.last_k IS NULL THEN true
                ELSE COALESCE(ps.last_whole, false) END AND NOT COALESCE(pp.skipped, false)
               AS everything_sold
      FROM stress_plan_start st
      LEFT JOIN per_pool pp ON pp.id = st.id
      LEFT JOIN per_sales ps ON ps.id = st.id
      LEFT JOIN least l ON l.id = st.id
)
SELECT o.id,
       NOT o.repeats AND COALESCE(o.within, true) AND NOT COALESCE(o.unsearched, false) AS planned,
       CASE WHEN o.cash > 0 THEN jsonb_build_array(jsonb_build_object(
                'asset', 'HKD', 'quantity', o.cash::text, 'lot_size', '0.01', 'market_value', o.cash::text,
                'proceeds', o.cash::text)) ELSE '[]'::jsonb END || COALESCE(o.plan, '[]'::jsonb) AS plan,
       o.cash + o.proceeds AS proceeds,
       CASE WHEN o.debt_after <= 0 THEN 0
            WHEN o.lv_after <= 0 THEN NULL
            ELSE ROUND(o.debt_after::numeric(40, 20) / o.lv_after, 8) END AS ratio,
       CASE WHEN o.everything_sold AND o.debt_after > 0 THEN o.debt_after ELSE 0 END AS shortfall
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
