"""On PostgreSQL the balance projection is kept by the database from the legs (a statement trigger that runs
as the tables' owner), so that the application's role may read balances but never write one."""

from django.db import migrations

from core.db import PostgresOnlySQL
from core.sql import sql_file


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_ledger_invariants")]

    operations = [
        PostgresOnlySQL(
            sql=sql_file(__file__, "balance_projection.sql"),
            reverse_sql="DROP TRIGGER ledger_balance_project ON ledger_leg; DROP FUNCTION ledger_balance_project();",
        ),
    ]
