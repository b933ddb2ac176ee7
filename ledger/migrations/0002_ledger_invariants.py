"""PostgreSQL guards the ledger even from code that bypasses the ORM:

- every transaction's legs sum to zero per instrument, checked at commit by a deferred constraint
  trigger (django-hordak does the same);
- transactions and legs are append-only: UPDATE and DELETE are refused.
"""

from django.db import migrations

from core.db import PostgresOnlySQL, append_only

ZERO_SUM = PostgresOnlySQL(
    sql="""
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
    """,
    reverse_sql="DROP TRIGGER ledger_leg_zero_sum ON ledger_leg; DROP FUNCTION ledger_leg_zero_sum();",
)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [ZERO_SUM, append_only("ledger_leg"), append_only("ledger_transaction")]
