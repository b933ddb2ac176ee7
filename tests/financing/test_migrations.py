"""The migrations: one initial schema per app, then what the models cannot say (SQL, reference rows, schedules)."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django_celery_beat.models import PeriodicTask

from financing.models import FirmExposure, MarginPolicy

OUR_APPS = ["accounts", "api", "collateral", "financing", "ledger", "notifications"]
# name: (task, schedule, kwargs, enabled), as the periodic work has always been scheduled.
SCHEDULES = {
    "Margin sweep (all facilities)": ("financing.margin_sweep", "every 60 seconds", '{"trigger": "scheduled"}', True),
    "Margin call deadlines": ("financing.margin_call_deadlines", "every 30 seconds", "{}", True),
    "Price refresh and margin sweep": ("financing.monitor_prices", "every 10 seconds", "{}", True),
    "Forced sales": ("financing.forced_sales_step_all", "every 10 seconds", "{}", True),
    "Interest accrual": ("financing.interest_accrual", "50 23 * * * Asia/Hong_Kong", "{}", True),
    "Outbox delivery": ("notifications.deliver_due_messages", "every 15 seconds", "{}", True),
    "Margin sweep watchdog": ("financing.sweep_watchdog", "every 60 seconds", "{}", True),
    "Forget old idempotency records": ("api.purge_idempotency_records", "30 3 * * * Asia/Hong_Kong",
                                       '{"days": 30}', True),
    "Retention of history": ("financing.retention", "7 * * * * Asia/Hong_Kong", "{}", True),
    "Stress tests (the library, monthly)": ("oversight.stress_library_run", "30 18 1 * * Asia/Hong_Kong", "{}", True),
    "Daily margin financing report": ("oversight.daily_report", "30 17 * * 1-5 Asia/Hong_Kong", "{}", True),
}  # fmt: skip
# The SQL functions the migrations create (trigger functions apart), each dropped on the way back.
FUNCTIONS = {"format_percent", "format_hkd", "isoformat_utc", "cure_repayment", "cure_top_up", "uuid_v7",
             "financing_ratiosnapshot_partitions_keep",
             "ledger_leg_zero_sum", "ledger_balance_project", "ledger_leg_append_only", "ledger_transaction_append_only",
             "accounts_auditevent_append_only", "notifications_event_append_only",
             "accounts_client_kept_for_notifications_event",
             "notifications_webhookendpoint_kept_for_notifications_outboxmess"}  # fmt: skip


def schedules() -> dict[str, tuple[str, str, str, bool]]:
    def when(task: PeriodicTask) -> str:
        if task.interval is not None:
            return f"every {task.interval.every} {task.interval.period}"
        c = task.crontab
        return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week} {c.timezone}"

    tasks = PeriodicTask.objects.select_related("interval", "crontab")
    return {t.name: (t.task, when(t), t.kwargs, t.enabled) for t in tasks}


def functions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname FROM pg_proc WHERE proname = ANY(%s)", [sorted(FUNCTIONS)])
        return {name for (name,) in cursor.fetchall()}


def our_tables() -> list[str]:
    return [t for t in connection.introspection.table_names() if t.split("_")[0] in OUR_APPS]


def test_the_models_need_no_new_migration(db):
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "No changes detected"


def test_the_migrations_create_the_reference_rows_and_schedules(db):
    """As the test database was built, by the migrations alone."""
    assert schedules() == SCHEDULES
    assert list(MarginPolicy.objects.values_list("name", "is_default", "cure_business_days")) == [
        ("Standard", True, 1)
    ]
    assert list(FirmExposure.objects.values_list("pk", flat=True)) == [1]
    assert functions() == FUNCTIONS


@pytest.mark.django_db(transaction=True)
def test_the_apps_migrate_to_zero_and_back(database_owner):
    """Every migration reverses: tables, functions and schedules go, and come back as they were. (Migrating
    is the owner's work: the application's role may not.)"""
    for app in ("accounts", "api"):  # every other app of ours depends on accounts
        call_command("migrate", app, "zero", verbosity=0)
    assert our_tables() == []
    assert functions() == set()
    assert schedules() == {}

    call_command("migrate", verbosity=0)
    assert schedules() == SCHEDULES
    assert list(MarginPolicy.objects.values_list("name", "is_default")) == [("Standard", True)]
    assert list(FirmExposure.objects.values_list("pk", flat=True)) == [1]
    assert functions() == FUNCTIONS
