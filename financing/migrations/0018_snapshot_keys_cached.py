"""The ratio snapshots' keys are drawn from their sequence a thousand at a time by each connection: a sweep writes
tens of thousands of snapshots, and each key drawn one by one locks and updates the sequence (measured: 50 ms for
69,618 keys, 28 ms cached). A connection that closes leaves a gap in the keys; nothing reads them in order (the
snapshots are ordered by the time they were taken)."""

from django.db import migrations

from core.db import PostgresOnlySQL


class Migration(migrations.Migration):
    dependencies = [("financing", "0017_cure_functions")]

    operations = [
        PostgresOnlySQL(
            sql="ALTER TABLE financing_ratiosnapshot ALTER COLUMN id SET CACHE 1000",
            reverse_sql="ALTER TABLE financing_ratiosnapshot ALTER COLUMN id SET CACHE 1",
        )
    ]
