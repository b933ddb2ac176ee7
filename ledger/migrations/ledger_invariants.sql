-- Every ledger transaction's legs sum to zero per instrument, checked at commit by a deferred constraint
-- trigger (django-hordak does the same): a transaction may be written leg by leg, and is whole by then.
CREATE OR REPLACE FUNCTION ledger_leg_zero_sum() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT instrument_id, SUM(amount) AS total INTO bad
      FROM ledger_leg
     WHERE transaction_id = NEW.transaction_id
     GROUP BY instrument_id
    HAVING SUM(amount) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: % sums to %',
            NEW.transaction_id, bad.instrument_id, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_leg_zero_sum
    AFTER INSERT ON ledger_leg
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_leg_zero_sum();
