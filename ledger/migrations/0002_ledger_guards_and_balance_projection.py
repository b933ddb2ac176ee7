"""PostgreSQL guards the ledger even from code that bypasses the ORM: every transaction's legs sum to zero
per instrument (a deferred constraint trigger), and transactions and legs are append-only; the balance
projection is kept by the database from the legs (a statement trigger that runs as the tables' owner), so
that the application's role may read balances but never write one."""

from django.db import migrations

from core.db import PostgresOnlySQL, append_only
from core.sql import sql_file


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        PostgresOnlySQL(
            sql=sql_file(__file__, "ledger_invariants.sql"),
            reverse_sql="DROP TRIGGER ledger_leg_zero_sum ON ledger_leg; DROP FUNCTION ledger_leg_zero_sum();",
        ),
        append_only("ledger_leg"),
        append_only("ledger_transaction"),
        PostgresOnlySQL(
            sql=sql_file(__file__, "balance_projection.sql"),
            reverse_sql="DROP TRIGGER ledger_balance_project ON ledger_leg; DROP FUNCTION ledger_balance_project();",
        ),
    ]
