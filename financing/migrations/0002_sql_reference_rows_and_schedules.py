"""What the models do not say: the reference rows (the firm-exposure lock row, the default margin policy), the
periodic work as django-celery-beat schedules (rows staff can change in the admin without a deploy, the
margin-critical ones only with a second person's approval), the sweep's watchdog among them, and, on
PostgreSQL, the SQL functions the margin-call ladder's set-based writes use and two storage settings."""

from django.db import migrations

from core.db import PostgresOnlySQL
from core.sql import sql_file

INTERVALS = [
    # name, task, every (seconds), kwargs, description
    ("Margin sweep (all facilities)", "financing.margin_sweep", 60, '{"trigger": "scheduled"}',
     "Revalue every facility, store changed ratios and run the margin-call ladder."),
    ("Margin call deadlines", "financing.margin_call_deadlines", 30, "{}",
     "Escalate margin calls past their deadline to a forced sale."),
    ("Price refresh and margin sweep", "financing.monitor_prices", 10, "{}",
     "Refresh BTC and ETH from the venues (median, band, quorum), revalue the holders of what moved, and run "
     "the margin-call ladder."),
    ("Forced sales", "financing.forced_sales_step_all", 10, "{}",
     "Plan, place, follow and book every open forced sale (venue orders, fills, proceeds)."),
    ("Margin sweep watchdog", "financing.sweep_watchdog", 60, "{}",
     "Alert staff once when the margin sweep has not finished for longer than its schedule allows, and once "
     "when it runs again."),
]  # fmt: skip
DAILY = "Interest accrual"


def create_reference_rows(apps, schema_editor):
    """Kept on the way back (the tables go with 0001), and not made twice on the way forward again."""
    apps.get_model("financing", "FirmExposure").objects.get_or_create(id=1)
    policy_model = apps.get_model("financing", "MarginPolicy")
    if not policy_model.objects.filter(is_default=True).exists():
        policy_model.objects.create(name="Standard", is_default=True)


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
        name=DAILY,
        defaults={
            "task": "financing.interest_accrual",
            "crontab": daily,
            "description": "ACT/365 interest for the day, on Hong Kong business days.",
        },
    )


def remove_schedules(apps, schema_editor):
    names = [row[0] for row in INTERVALS] + [DAILY]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("financing", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        # The ladder's statements draw event keys with uuid_v7().
        ("notifications", "0002_guards_keys_and_delivery_schedule"),
    ]

    operations = [
        migrations.RunPython(create_reference_rows, migrations.RunPython.noop),
        migrations.RunPython(create_schedules, remove_schedules),
        PostgresOnlySQL(
            sql=sql_file(__file__, "wording_functions.sql"),
            reverse_sql="DROP FUNCTION format_percent(numeric); DROP FUNCTION format_hkd(numeric); "
            "DROP FUNCTION isoformat_utc(timestamptz);",
        ),
        PostgresOnlySQL(
            sql=sql_file(__file__, "cure_functions.sql"),
            reverse_sql="DROP FUNCTION cure_repayment(numeric, numeric, numeric); "
            "DROP FUNCTION cure_top_up(numeric, numeric, numeric);",
        ),
        # Room on every page of the margin states for the sweep's new row versions: heap-only updates, with no
        # index maintenance.
        PostgresOnlySQL(
            sql="ALTER TABLE financing_marginstate SET (fillfactor = 50)",
            reverse_sql="ALTER TABLE financing_marginstate RESET (fillfactor)",
        ),
        # The ratio snapshots' keys drawn a thousand at a time by each connection: a sweep writes tens of thousands
        # of snapshots, and a key drawn one by one locks and updates the sequence (measured: 50 ms for 69,618
        # keys, 28 ms cached). A closed connection leaves a gap in the keys; nothing reads them in order.
        PostgresOnlySQL(
            sql="ALTER TABLE financing_ratiosnapshot ALTER COLUMN id SET CACHE 1000",
            reverse_sql="ALTER TABLE financing_ratiosnapshot ALTER COLUMN id SET CACHE 1",
        ),
    ]
