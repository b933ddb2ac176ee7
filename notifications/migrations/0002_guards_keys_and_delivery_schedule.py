"""What PostgreSQL adds to the notification tables: events are append-only; a client or endpoint is not deleted
while events or messages name it (their references are written in bulk without a key check); ``uuid_v7()``
draws time-ordered event keys in SQL. And the outbox delivery's django-celery-beat schedule."""

from django.db import migrations

from core.db import PostgresOnlySQL, append_only, kept_while_referenced
from core.sql import sql_file

NAME = "Outbox delivery"


def create_schedule(apps, schema_editor):
    interval, _ = apps.get_model("django_celery_beat", "IntervalSchedule").objects.get_or_create(
        every=15, period="seconds"
    )
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(
        name=NAME,
        defaults={
            "task": "notifications.deliver_due_messages",
            "interval": interval,
            "kwargs": "{}",
            "description": "Deliver webhooks and e-mails still pending (retries, and anything a worker dropped).",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("notifications", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        append_only("notifications_event"),
        kept_while_referenced("accounts_client", "notifications_event", "client_id"),
        kept_while_referenced("notifications_webhookendpoint", "notifications_outboxmessage", "endpoint_id"),
        PostgresOnlySQL(sql=sql_file(__file__, "uuid_v7.sql"), reverse_sql="DROP FUNCTION uuid_v7();"),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
