"""Who may approve weakening a margin-critical schedule, and the watchdog's own schedule: every minute, staff are
alerted when the margin sweep has stopped."""

from django.db import migrations

NAME = "Margin sweep watchdog"


def create_schedule(apps, schema_editor):
    interval, _ = apps.get_model("django_celery_beat", "IntervalSchedule").objects.get_or_create(
        every=60, period="seconds"
    )
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(
        name=NAME,
        defaults={
            "task": "financing.sweep_watchdog",
            "interval": interval,
            "kwargs": "{}",
            "description": "Alert staff once when the margin sweep has not finished for longer than its schedule "
            "allows, and once when it runs again.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("financing", "0003_pause_for_unconfirmed_price"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="sweeprun",
            options={
                "ordering": ["-started_at"],
                "permissions": [
                    ("approve_schedule_change", "Can approve disabling, deleting or slowing a margin-critical schedule")
                ],
            },
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
