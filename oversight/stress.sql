-- The stress run's statement, run by oversight/stress.py through financing.monitoring.sweep.valuation_of_book_run:
-- the sweep's own valuation of every open facility (the valuation piece, at the scenario's shocked unit values), and one
-- row per facility into the run's results. It writes nothing else: the margin states it reads are the figures
-- "before" (as last swept), and the repayment that cures is the margin-call ladder's own function.

-- name: results
-- The rows written, and the firm's figures of them in the same pass: per status before and after, how many and
-- their sums (a handful of rows; oversight.stress._firm_figures adds them up). The plans come later.
WITH {valuation},
written AS (
    INSERT INTO oversight_stressresult (run_id, facility_id, market_value_before, margin_value_before, debt_before,
                                        ratio_before, status_before, market_value, margin_value, debt, ratio_after,
                                        status_after, repayment_to_cure, sale_plan, sale_proceeds, shortfall)
    SELECT %(run)s, r.facility_id, r.old_market_value, r.old_margin_value, r.old_debt, r.old_ratio,
           COALESCE(r.old_status, ''), r.market_value, r.margin_value, r.debt, r.margin_ratio, r.status,
           CASE WHEN r.status IN ('margin_call', 'forced_sale') THEN cure_repayment(r.debt, r.margin_value, r.target)
                ELSE 0 END,
           '[]'::jsonb, 0, 0
      FROM result r
    RETURNING status_before, status_after, market_value_before, market_value, margin_value_before, margin_value,
              repayment_to_cure, debt
)
SELECT status_before, status_after, COUNT(*), SUM(market_value_before), SUM(market_value), SUM(margin_value_before),
       SUM(margin_value), SUM(repayment_to_cure), SUM(debt)
  FROM written GROUP BY status_before, status_after


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
DROP TABLE IF EXISTS pg_temp.stress_plan_positions


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
need AS MATERIALIZED (
    SELECT r.id, r.debt, p.account_id, mp.target, mp.cost, mp.sale_order, mp.repeats, COALESCE(c.cash, 0) AS cash
      FROM oversight_stressresult r
      JOIN financing_facility f ON f.id = r.facility_id
      JOIN policies mp ON mp.id = COALESCE(f.policy_id, %(default_policy)s)
      LEFT JOIN collateral_collateralpool p ON p.client_id = f.client_id
      LEFT JOIN LATERAL (
          SELECT FLOOR(LEAST(b.amount, GREATEST(r.debt, 0)) * 100) * 0.01 AS cash FROM ledger_balance b
           WHERE b.account_id = p.account_id AND b.instrument_id = 'HKD' AND b.amount > 0
      ) c ON true
     WHERE r.run_id = %(run)s AND r.status_after IN ('margin_call', 'forced_sale')
),
positions AS (
    SELECT n.id, n.target, n.cost, n.repeats, n.cash, n.debt - n.cash AS d0, h.symbol, h.held, h.unit, h.haircut,
           h.lim, h.eligible, h.lot, h.lot_text, h.unit IS NOT NULL AS priced, h.symbol IS NOT NULL AND h.unit IS NULL AS unpriced,
           COALESCE(ROUND(h.held * h.unit, 2), 0) AS mv,
           CASE WHEN h.unit IS NOT NULL THEN ROW_NUMBER() OVER (
               PARTITION BY n.id, h.unit IS NOT NULL
               ORDER BY COALESCE(array_position(n.sale_order, h.symbol::text), 2147483647), h.grp, h.crank,
                        h.haircut, h.symbol COLLATE "C") END AS k
      FROM need n
      LEFT JOIN LATERAL (
          SELECT b.instrument_id AS symbol, trim_scale(b.amount) AS held, u.unit, u.haircut, u.lim, u.eligible, u.lot,
                 u.lot_text, u.grp, u.crank
            FROM ledger_balance b JOIN stress_plan_units u ON u.symbol = b.instrument_id AND NOT u.cash
           WHERE b.account_id = n.account_id AND b.amount > 0
      ) h ON true
),
valued AS (
    SELECT p.*, v.lvf, CASE WHEN p.lim IS NOT NULL THEN v.lvf ELSE 0 END AS lvl,
           CASE WHEN p.lim IS NULL OR NOT p.eligible OR p.mv = 0 THEN NULL WHEN p.lim > 0 THEN p.mv / p.lim
                ELSE 1e30 END AS thr,
           FLOOR(p.mv * (1 - p.cost) * 100) * 0.01 AS pf
      FROM positions p
     CROSS JOIN LATERAL (
         SELECT CASE WHEN p.eligible THEN GREATEST(FLOOR(p.mv * (1 - p.haircut) * 100) * 0.01, 0) ELSE 0 END AS lvf
     ) v
),
summed AS (
    SELECT v.*,
           SUM(v.lvf) OVER pool AS lv0, SUM(v.lvl) OVER pool AS lvl0, SUM(v.mv) OVER pool AS m0,
           bool_or(v.unpriced) OVER pool AS skipped, COUNT(v.k) OVER pool AS steps, MAX(v.thr) OVER pool AS thr_all,
           ROW_NUMBER() OVER seq = 1 AS first,
           array_agg(v.k) FILTER (WHERE v.thr IS NOT NULL) OVER pool AS ks,
           array_agg(v.mv) FILTER (WHERE v.thr IS NOT NULL) OVER pool AS mvs,
           array_agg(v.lim) FILTER (WHERE v.thr IS NOT NULL) OVER pool AS lims,
           array_agg(v.haircut) FILTER (WHERE v.thr IS NOT NULL) OVER pool AS haircuts,
           SUM(v.pf) OVER seq AS pf_through, SUM(v.lvf) OVER seq AS lvf_through, SUM(v.lvl) OVER seq AS lvl_through,
           SUM(v.mv) OVER seq AS mv_through, MAX(v.thr) OVER after AS thr_after
      FROM valued v
    WINDOW pool AS (PARTITION BY v.id),
           seq AS (PARTITION BY v.id ORDER BY v.k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
           after AS (PARTITION BY v.id ORDER BY v.k ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
),
-- The states: before any sale (the same on every row of a pool) and after this position's whole sale. A cut can
-- bind only below its ``thr``; where one may, the limited positions are valued exactly at that pool value.
states AS (
    SELECT s.*, s.m0 - s.mv_through AS m_after, s.d0 - s.pf_through AS d_after,
           s.lv0 - CASE WHEN s.m0 < s.thr_all * 1.000000001 + 0.01 THEN s.lvl0 - (
               SELECT COALESCE(SUM(GREATEST(FLOOR(LEAST(o.mv, o.lim * s.m0) * (1 - o.h) * 100) * 0.01, 0)), 0)
                 FROM unnest(s.mvs, s.lims, s.haircuts) AS o(mv, lim, h)) ELSE 0 END AS lv_start,
           s.lv0 - s.lvf_through - CASE WHEN s.m0 - s.mv_through < s.thr_after * 1.000000001 + 0.01
               THEN s.lvl0 - s.lvl_through - (
                   SELECT COALESCE(SUM(GREATEST(FLOOR(LEAST(o.mv, o.lim * (s.m0 - s.mv_through)) * (1 - o.h) * 100)
                                                * 0.01, 0)), 0)
                     FROM unnest(s.ks, s.mvs, s.lims, s.haircuts) AS o(k, mv, lim, h) WHERE o.k > s.k)
               ELSE 0 END AS lv_after
      FROM summed s
    OFFSET 0
)
SELECT st.*, st.d0 <= st.target * st.lv_start AS start_reaches,
       MIN(st.k) FILTER (WHERE st.k IS NOT NULL AND st.d_after <= st.target * st.lv_after) OVER (PARTITION BY st.id)
           AS last_k
  FROM states st


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
WITH search AS (
    SELECT c.id, c.k, c.held, c.unit, c.lot, c.haircut, c.eligible, c.lim, c.cost, c.target, c.mvs, c.lims,
           c.haircuts, c.ks, c.thr_after,
           100 * (c.d0 - c.pf_through + c.pf) AS debt, 100 * (c.lv0 - c.lvf_through) AS others,
           c.m0 - c.mv_through AS rest, c.lvl0 - c.lvl_through AS lvl_after,
           c.lv0 - c.lvf_through - (c.lvl0 - c.lvl_through) AS fixed,
           (1 - c.cost) - c.target * CASE WHEN c.eligible THEN 1 - c.haircut ELSE 0 END AS slope,
           CASE WHEN c.eligible THEN c.target * (1 - c.haircut) ELSE 0 END AS kept,
           100 * c.held * c.unit AS full_value, 100 * c.unit * c.lot AS lot_value, CEIL(c.held / c.lot) AS held_lots
      FROM stress_plan_positions c
     WHERE c.k = c.last_k AND NOT c.start_reaches AND NOT c.repeats
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
           LEAST(w.cents_high - w.cents_low, w.lots_high - w.lots_low) + 1 AS width
      FROM (
        SELECT l.*, GREATEST(LEAST(CEIL((l.cents_high - 0.5) / l.lot_value) + 1, l.held_lots), l.lots_low) AS lots_high
          FROM (
            SELECT b.*, GREATEST(b.cents_high_raw, b.cents_low) AS cents_high,
                   GREATEST(FLOOR((b.cents_low - 0.5) / b.lot_value), 1) AS lots_low
              FROM bounds b
            OFFSET 0
          ) AS l
        OFFSET 0
      ) AS w
     WHERE LEAST(w.cents_high - w.cents_low, w.lots_high - w.lots_low) + 1 <= %(max_candidates)s
),
-- The first pass: the window's candidates from its bottom, the first that reaches.
first_pass AS MATERIALIZED (
    SELECT w.*, f.lots, f.quantity, f.sold, f.proceeds, f.debt_after, f.lv_after
      FROM windows w
      LEFT JOIN LATERAL (
          SELECT t.* FROM (
              SELECT x.*, (w.debt - x.proceeds) * 0.01 AS debt_after,
                     w.fixed + CASE WHEN w.eligible THEN GREATEST(FLOOR(LEAST(x.left_value * 0.01,
                         COALESCE(w.lim * x.pool, x.left_value * 0.01)) * (1 - w.haircut) * 100) * 0.01, 0) ELSE 0 END
                     + CASE WHEN w.mvs IS NULL THEN 0
                            WHEN x.pool >= w.thr_after * 1.000000001 + 0.01 THEN w.lvl_after
                            ELSE (SELECT COALESCE(SUM(GREATEST(FLOOR(LEAST(o.mv, o.lim * x.pool) * (1 - o.h) * 100)
                                                             * 0.01, 0)), 0)
                                    FROM unnest(w.ks, w.mvs, w.lims, w.haircuts) AS o(k, mv, lim, h)
                                   WHERE o.k > w.k) END AS lv_after
                FROM (
                  SELECT q.lots, q.quantity, q.sold, FLOOR(q.sold * (1 - w.cost)) AS proceeds, q.left_value,
                         w.rest + q.left_value * 0.01 AS pool
                    FROM (
                      SELECT g.lots, LEAST(g.lots * w.lot, w.held) AS quantity,
                             ROUND(100 * LEAST(g.lots * w.lot, w.held) * w.unit) AS sold,
                             ROUND(100 * (w.held - LEAST(g.lots * w.lot, w.held)) * w.unit) AS left_value
                        FROM (
                          SELECT CASE WHEN w.by_cents
                                      THEN LEAST(GREATEST(CEIL((w.cents_low + n - 0.5) / w.lot_value), 1), w.held_lots)
                                      ELSE w.lots_low + n END AS lots
                            FROM generate_series(0, w.width - 1) AS n
                          OFFSET 0
                        ) AS g
                      OFFSET 0
                    ) AS q
                  OFFSET 0
                ) AS x
              OFFSET 0
          ) AS t
           WHERE t.debt_after <= w.target * t.lv_after
           LIMIT 1
      ) f ON true
),
least AS (
    SELECT f.id, f.quantity, f.sold * 0.01 AS mv, f.proceeds * 0.01 AS pf, f.debt_after, f.lv_after
      FROM first_pass f WHERE f.lots IS NOT NULL
),
-- Each row's sales: whole positions before the last step, the least quantity at it.
sales AS (
    SELECT c.id, c.k, c.symbol, c.lot_text, c.steps, c.d_after, c.lv_after AS lv_whole,
           CASE WHEN c.k = c.last_k THEN l.quantity ELSE c.held END AS quantity,
           CASE WHEN c.k = c.last_k THEN l.mv ELSE c.mv END AS mv,
           CASE WHEN c.k = c.last_k THEN l.pf ELSE c.pf END AS pf,
           c.k = c.last_k AND l.id IS NULL AS unsearched,
           c.k = c.steps AND (c.last_k IS NULL OR c.k <> c.last_k OR l.quantity >= c.held) AS last_whole
      FROM stress_plan_positions c
      LEFT JOIN least l ON l.id = c.id AND c.k = c.last_k
     WHERE NOT c.start_reaches AND NOT c.repeats AND c.k <= COALESCE(c.last_k, c.steps)
),
per_sales AS (
    SELECT s.id, bool_or(s.unsearched) AS unsearched, SUM(s.pf) AS proceeds,
           jsonb_agg(jsonb_build_object(
               'asset', s.symbol,
               'quantity', CASE WHEN s.quantity::text LIKE '%%.%%' THEN rtrim(rtrim(s.quantity::text, '0'), '.')
                                ELSE s.quantity::text END,
               'lot_size', s.lot_text, 'market_value', s.mv::text, 'proceeds', s.pf::text) ORDER BY s.k) AS plan,
           bool_or(s.last_whole) AS last_whole,
           MIN(s.d_after) FILTER (WHERE s.k = s.steps) AS d_end, MIN(s.lv_whole) FILTER (WHERE s.k = s.steps) AS lv_end
      FROM sales s GROUP BY s.id
),
outcome AS (
    SELECT p.id, p.cash, p.repeats, ps.unsearched, ps.plan, COALESCE(ps.proceeds, 0) AS proceeds,
           CASE WHEN p.start_reaches OR p.steps = 0 THEN p.d0 WHEN p.last_k IS NULL THEN ps.d_end
                ELSE l.debt_after END AS debt_after,
           CASE WHEN p.start_reaches OR p.steps = 0 THEN p.lv_start WHEN p.last_k IS NULL THEN ps.lv_end
                ELSE l.lv_after END AS lv_after,
           CASE WHEN p.start_reaches THEN p.steps = 0
                WHEN p.last_k IS NULL THEN true
                ELSE COALESCE(ps.last_whole, false) END
           AND NOT COALESCE(p.skipped, false) AS sold_all
      FROM stress_plan_positions p
      LEFT JOIN per_sales ps ON ps.id = p.id
      LEFT JOIN least l ON l.id = p.id
     WHERE p.first
),
plans AS (
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
),
written AS (
    UPDATE oversight_stressresult r
       SET sale_plan = p.plan, sale_proceeds = p.proceeds, ratio_after_sale = p.ratio, shortfall = p.shortfall
      FROM plans p
     WHERE r.id = p.id AND p.planned
)
SELECT p.id, NULL::varchar, NULL::numeric, NULL::numeric FROM plans p WHERE NOT p.planned
UNION ALL
SELECT NULL, s.symbol, SUM(s.quantity), SUM(s.mv)
  FROM sales s JOIN plans p ON p.id = s.id AND p.planned
 GROUP BY s.symbol


-- name: plan_totals
-- The firm's figures of the plans: only the rows with a call or a sale after the shock have one. What the sales
-- would repay is their proceeds, never more than the debt they repay.
SELECT COALESCE(SUM(sale_proceeds), 0), COALESCE(SUM(shortfall), 0),
       COALESCE(SUM(LEAST(debt, sale_proceeds)) FILTER (WHERE sale_proceeds > 0), 0)
  FROM oversight_stressresult
 WHERE run_id = %(run)s AND status_after IN ('margin_call', 'forced_sale')
