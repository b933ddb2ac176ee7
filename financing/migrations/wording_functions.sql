-- Figures worded as core.money words them, for the margin-call ladder's set-based writes: the tests check
-- each function against its Python twin.

-- core.money.format_percent: the ratio × 100, half-up to the cent, then a percent sign; no ratio (infinite): "∞".
CREATE OR REPLACE FUNCTION format_percent(ratio numeric) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT COALESCE(round(ratio * 100, 2)::text || '%', '∞') $$;

-- core.money.format_hkd: "HK$" and the amount with thousands separators and two places (amounts in cents).
CREATE OR REPLACE FUNCTION format_hkd(amount numeric) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT 'HK$' || to_char(amount, 'FM999,999,999,999,999,990.00') $$;

-- datetime.isoformat() of a time in UTC: seconds always, microseconds only when there are some, "+00:00".
CREATE OR REPLACE FUNCTION isoformat_utc(moment timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
                 || CASE WHEN extract(microseconds FROM moment)::bigint % 1000000 = 0 THEN ''
                         ELSE to_char(moment AT TIME ZONE 'UTC', '.US') END
                 || '+00:00' $$;
