-- The statements of financing.selectors.

-- name: cut_may_bind
-- Of the given facilities, those whose pool holds an eligible asset with a concentration limit and has a
-- position whose market value (half-up to the cent, as the valuation rounds it) is above its limit times the
-- pool's market value at the given unit values: every pool in which a concentration cut binds, and the few in
-- which one applies by less than half a cent. Each pool's balances are read by the index.
WITH unit AS (
    SELECT * FROM unnest(%(symbols)s::text[], %(unit_values)s::numeric[], %(limits)s::numeric[],
                         %(eligible)s::boolean[]) AS u(symbol, unit_value, concentration_limit, eligible)
),
position AS (
    SELECT f.id AS facility_id, u.concentration_limit, u.eligible,
           ROUND(b.amount * u.unit_value, 2) AS market_value
      FROM financing_facility f
      JOIN collateral_collateralpool p ON p.client_id = f.client_id
      JOIN ledger_balance b ON b.account_id = p.account_id AND b.amount <> 0
      JOIN unit u ON u.symbol = b.instrument_id
     WHERE f.id = ANY(%(facilities)s::bigint[])
)
SELECT facility_id FROM (
    SELECT position.*, SUM(market_value) OVER (PARTITION BY facility_id) AS pool_value FROM position
) AS valued
 GROUP BY facility_id
HAVING bool_or(concentration_limit IS NOT NULL AND eligible)
   AND bool_or(market_value > concentration_limit * pool_value)
 ORDER BY facility_id
