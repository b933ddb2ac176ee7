"""The stress-test library (reference rows: the platform's own scenarios) and the monthly run of it as a
django-celery-beat schedule staff can change in the admin (audited there)."""


from django.db import migrations

from oversight.library import library_write

SCHEDULE = "Stress tests (the library, monthly)"


def create_library(apps, schema_editor):
    library_write(apps.get_model("oversight", "StressScenario"))


def create_schedule(apps, schema_editor):
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    monthly, _ = crontab_model.objects.get_or_create(
        minute="30", hour="18", day_of_week="*", day_of_month="1", month_of_year="*", timezone="Asia/Hong_Kong"
    )
    task_model.objects.get_or_create(
        name=SCHEDULE,
        defaults={
            "task": "oversight.stress_library_run",
            "crontab": monthly,
            "description": "Run every active stress scenario on the live book (read-only) and keep the results.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("oversight", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_library, migrations.RunPython.noop),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
