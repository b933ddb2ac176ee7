-- SQL twins of collateral.calculations.cure_amounts for the margin-call ladder's set-based batch: what brings
-- the margin ratio debt / margin_value down to target — a repayment of D − T·LV, or a cash top-up of
-- D/T − LV — rounded up to the cent; zero when the ratio is already at or below the target. The tests check
-- both against the Python function.
--
-- Cents back to HKD by "/ 100.00": PostgreSQL carries a quotient to at least the scale of either operand, but
-- otherwise only to about 16 significant digits, so "/ 100" would drop the cents of amounts from HK$10^16 on;
-- round(…, 2) then gives the amount its two places (exactly: the quotient has no more).
CREATE OR REPLACE FUNCTION cure_repayment(debt numeric, margin_value numeric, target numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN debt > 0 AND debt > target * margin_value
                      THEN round(ceil((debt - target * margin_value) * 100) / 100.00, 2)
                      ELSE 0.00 END $$;

-- D/T carried to 20 places before rounding up: a debt has two places and a target four (fraction_field), so a
-- quotient that is not a whole number of cents lies at least 1e-6 away from one: the rounding is the exact one.
CREATE OR REPLACE FUNCTION cure_top_up(debt numeric, margin_value numeric, target numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN debt > 0 AND debt > target * margin_value
                      THEN round(ceil((debt::numeric(40, 20) / target - margin_value) * 100) / 100.00, 2)
                      ELSE 0.00 END $$;
