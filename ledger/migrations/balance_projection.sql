-- The balance projection follows the legs, in the database: every statement that inserts legs adds them to
-- ledger_balance, summed per account and instrument, in one upsert in key order (so that two postings lock
-- the balances they share in the same order). SECURITY DEFINER: it runs as the owner of the tables, so the
-- application's role needs no write privilege on ledger_balance at all — its balances move by legs only.
CREATE OR REPLACE FUNCTION ledger_balance_project() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO ledger_balance (account_id, instrument_id, amount)
    SELECT account_id, instrument_id, SUM(amount)
      FROM new_legs
     GROUP BY account_id, instrument_id
    HAVING SUM(amount) <> 0
     ORDER BY account_id, instrument_id
        ON CONFLICT (account_id, instrument_id) DO UPDATE SET amount = ledger_balance.amount + excluded.amount;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_balance_project
    AFTER INSERT ON ledger_leg
    REFERENCING NEW TABLE AS new_legs
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_balance_project();
