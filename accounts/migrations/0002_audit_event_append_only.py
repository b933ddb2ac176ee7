"""PostgreSQL refuses UPDATE and DELETE of audit events, even from code that bypasses the ORM."""

from django.db import migrations

from core.db import append_only


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [append_only("accounts_auditevent")]
