"""The periodic work, as django-celery-beat schedules: rows in the database that staff can change in the
admin (interval, enabled) without a deploy."""

from django.db import migrations

INTERVALS = [
    # name, task, every (seconds), kwargs, description
    ("Margin sweep (all facilities)", "financing.margin_sweep", 60, '{"trigger": "scheduled"}',
     "Revalue every facility, store changed ratios and run the margin-call ladder."),
    ("Margin call deadlines", "financing.margin_call_deadlines", 30, "{}",
     "Escalate margin calls past their deadline to a forced sale."),
    ("Outbox delivery", "notifications.deliver_due_messages", 15, "{}",
     "Deliver webhooks and e-mails still pending (retries, and anything a worker dropped)."),
]  # fmt: skip


def create_schedules(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds, kwargs, description in INTERVALS:
        interval, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
        task_model.objects.get_or_create(
            name=name, defaults={"task": task, "interval": interval, "kwargs": kwargs, "description": description}
        )
    daily, _ = crontab_model.objects.get_or_create(
        minute="50", hour="23", day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Hong_Kong"
    )
    task_model.objects.get_or_create(
        name="Interest accrual",
        defaults={
            "task": "financing.interest_accrual",
            "crontab": daily,
            "description": "ACT/365 interest for the day, on Hong Kong business days.",
        },
    )


def remove_schedules(apps, schema_editor):
    names = [row[0] for row in INTERVALS] + ["Interest accrual"]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("financing", "0003_monitoring"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
