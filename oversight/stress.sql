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
