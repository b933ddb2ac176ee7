"""The daily purge of old idempotency records, as a django-celery-beat schedule staff can change in the admin."""

from django.db import migrations

NAME = "Forget old idempotency records"


def create_schedule(apps, schema_editor):
    crontab, _ = apps.get_model("django_celery_beat", "CrontabSchedule").objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Hong_Kong"
    )
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(
        name=NAME,
        defaults={
            "task": "api.purge_idempotency_records",
            "crontab": crontab,
            "kwargs": '{"days": 30}',
            "description": "Delete stored responses to Idempotency-Keys older than 30 days.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("api", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
