-- The live read of one facility (financing.selectors.facility_read): one row per non-zero holding of its
-- client's pool (one row with empty holding columns when the pool holds nothing or there is none), each row
-- carrying the facility, its client's reference, its policy's name and thresholds (the default policy's when
-- it names none), its debt, its open margin call, and what valuing the holding takes: the asset's terms, its
-- current price, and the FX rates that turn the price's currency into HKD (direct, or through USD, as
-- collateral.selectors.fx_to_hkd routes them: the newest usable rate of each pair). The arithmetic stays in
-- collateral.calculations; this statement only reads, in one round trip, what the valuation reads in seven.
SELECT f.id, f.reference, f.client_id, c.reference AS client_reference, f.status, f.opened_on, f."limit",
       f.rate_kind, f.fixed_rate, f.base_rate_name, f.spread, f.policy_id,
       own.name AS policy_name, mp.max_advance, mp.warning, mp.margin_call, mp.forced_sale, mp.target,
       (SELECT b.amount FROM ledger_balance b
         WHERE b.account_id = f.principal_account_id AND b.instrument_id = 'HKD') AS principal,
       (SELECT b.amount FROM ledger_balance b
         WHERE b.account_id = f.interest_account_id AND b.instrument_id = 'HKD') AS interest,
       (SELECT b.amount FROM ledger_balance b
         WHERE b.account_id = f.fees_account_id AND b.instrument_id = 'HKD') AS fees,
       (SELECT m.id FROM financing_margincall m
         WHERE m.facility_id = f.id AND m.status = ANY(%(open_call_statuses)s) LIMIT 1) AS open_margin_call_id,
       h.instrument_id AS symbol, h.amount AS quantity, a.kind, a.currency AS asset_currency, a.haircut,
       a.concentration_limit, a.eligible, a.lot_size, i.decimals, pr.price, pr.currency AS price_currency,
       CASE WHEN h.instrument_id IS NULL THEN NULL ELSE (
           SELECT x.rate FROM collateral_fxrate x
            WHERE x.currency = CASE WHEN a.kind = 'cash' THEN a.currency ELSE COALESCE(pr.currency, a.currency) END
              AND x.quote = 'HKD' AND x.status = ANY(%(usable)s)
            ORDER BY x.observed_at DESC, x.id DESC LIMIT 1) END AS fx_direct,
       CASE WHEN h.instrument_id IS NULL THEN NULL ELSE (
           SELECT x.rate FROM collateral_fxrate x
            WHERE x.currency = CASE WHEN a.kind = 'cash' THEN a.currency ELSE COALESCE(pr.currency, a.currency) END
              AND x.quote = 'USD' AND x.status = ANY(%(usable)s)
            ORDER BY x.observed_at DESC, x.id DESC LIMIT 1) END AS fx_to_usd,
       CASE WHEN h.instrument_id IS NULL THEN NULL ELSE (
           SELECT x.rate FROM collateral_fxrate x
            WHERE x.currency = 'USD' AND x.quote = 'HKD' AND x.status = ANY(%(usable)s)
            ORDER BY x.observed_at DESC, x.id DESC LIMIT 1) END AS usd_to_hkd
  FROM financing_facility f
  JOIN accounts_client c ON c.id = f.client_id
  LEFT JOIN financing_marginpolicy own ON own.id = f.policy_id
  LEFT JOIN financing_marginpolicy mp
         ON mp.id = COALESCE(f.policy_id, (SELECT d.id FROM financing_marginpolicy d WHERE d.is_default LIMIT 1))
  LEFT JOIN LATERAL (
      SELECT b.instrument_id, b.amount FROM collateral_collateralpool p
        JOIN ledger_balance b ON b.account_id = p.account_id AND b.amount <> 0
       WHERE p.client_id = f.client_id
  ) h ON true
  LEFT JOIN collateral_asset a ON a.instrument_id = h.instrument_id
  LEFT JOIN ledger_instrument i ON i.code = a.instrument_id
  LEFT JOIN collateral_currentprice cp ON cp.asset_id = a.instrument_id AND a.kind <> 'cash'
  LEFT JOIN collateral_price pr ON pr.id = cp.price_id
 WHERE f.id = %(facility)s AND (%(client)s::bigint IS NULL OR f.client_id = %(client)s::bigint)
 ORDER BY h.instrument_id
