-- The concentration page's collateral by asset (console/selectors/concentration.py), on PostgreSQL: every
-- pool's positions valued at the current unit values, by the rules of collateral.calculations.pool_valuation
-- and the sweep's valuation (market value per position half-up to the cent; margin value with the
-- concentration cut at the limit times the pool's market value, down to the cent), added up by asset.

-- name: by_asset
WITH units AS (
    SELECT * FROM unnest(%(symbol)s::varchar[], %(unit_value)s::numeric[], %(haircut)s::numeric[],
                         %(concentration_limit)s::numeric[], %(eligible)s::boolean[])
        AS u(symbol, unit_value, haircut, concentration_limit, eligible)
),
positions AS (
    SELECT b.account_id, b.instrument_id AS symbol, b.amount, u.haircut, u.concentration_limit, u.eligible,
           COALESCE(ROUND(b.amount * u.unit_value, 2), 0) AS mv
      FROM collateral_collateralpool p
      JOIN ledger_balance b ON b.account_id = p.account_id AND b.amount <> 0
      JOIN units u ON u.symbol = b.instrument_id
),
pooled AS (
    SELECT ps.*, SUM(ps.mv) OVER (PARTITION BY ps.account_id) AS pool_mv FROM positions ps
)
SELECT symbol, SUM(amount), SUM(mv),
       SUM(CASE WHEN eligible THEN GREATEST(FLOOR(
               CASE WHEN concentration_limit IS NOT NULL AND pool_mv > 0 THEN LEAST(mv, concentration_limit * pool_mv)
                    ELSE mv END * (1 - haircut) * 100) * 0.01, 0)
           ELSE 0 END)
  FROM pooled
 GROUP BY symbol
