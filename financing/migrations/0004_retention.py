"""Retention (issue 24): the rollups of the ratio snapshots and the retention task's marks; on PostgreSQL the
snapshots partitioned by day (``ratio_snapshot_partitions.sql``); and the hourly retention task's schedule."""

import django.db.models.deletion
from django.db import migrations, models

from core.db import PostgresOnlySQL
from core.sql import sql_file

SCHEDULE = "Retention of history"


def create_schedule(apps, schema_editor):
    crontab, _ = apps.get_model("django_celery_beat", "CrontabSchedule").objects.get_or_create(
        minute="7", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Hong_Kong"
    )
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(
        name=SCHEDULE,
        defaults={
            "task": "financing.retention",
            "crontab": crontab,
            "kwargs": "{}",
            "description": "Roll the ratio snapshots up by hour and day, drop what is past its retention "
            "(docs/operations.md, What is kept), and create the coming days' snapshot partitions.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("financing", "0003_forced_sale_paused_by_staff"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="RetentionMark",
            fields=[
                ("name", models.CharField(max_length=40, primary_key=True, serialize=False)),
                ("at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="RatioRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("period", models.CharField(choices=[("hour", "hour"), ("day", "day")], max_length=4)),
                ("starts_at", models.DateTimeField()),
                (
                    "taken_at",
                    models.DateTimeField(help_text="when the last snapshot in the period was taken"),
                ),
                (
                    "market_value",
                    models.DecimalField(decimal_places=2, max_digits=20, verbose_name="market value (HKD)"),
                ),
                (
                    "margin_value",
                    models.DecimalField(decimal_places=2, max_digits=20, verbose_name="margin value (HKD)"),
                ),
                ("debt", models.DecimalField(decimal_places=2, max_digits=20, verbose_name="debt (HKD)")),
                (
                    "margin_ratio",
                    models.DecimalField(
                        blank=True, decimal_places=8, max_digits=20, null=True, verbose_name="margin ratio"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("no_debt", "No debt"),
                            ("ok", "Within limits"),
                            ("warning", "Warning"),
                            ("margin_call", "Margin call"),
                            ("forced_sale", "Forced sale"),
                        ],
                        max_length=12,
                    ),
                ),
                (
                    "lowest_ratio",
                    models.DecimalField(
                        blank=True,
                        decimal_places=8,
                        max_digits=20,
                        null=True,
                        verbose_name="lowest margin ratio",
                    ),
                ),
                (
                    "highest_ratio",
                    models.DecimalField(
                        blank=True,
                        decimal_places=8,
                        help_text="empty: infinite",
                        max_digits=20,
                        null=True,
                        verbose_name="highest margin ratio",
                    ),
                ),
                ("snapshots", models.PositiveIntegerField(help_text="snapshots rolled up")),
                (
                    "facility",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="financing.facility",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["period", "starts_at"], name="ratio_rollup_period_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("facility", "period", "starts_at"), name="ratio_rollup_unique"
                    )
                ],
            },
        ),
        PostgresOnlySQL(
            sql=sql_file(__file__, "ratio_snapshot_partitions.sql", "keep_function"),
            reverse_sql=migrations.RunSQL.noop,  # dropped by the reverse of the next
        ),
        PostgresOnlySQL(
            sql=sql_file(__file__, "ratio_snapshot_partitions.sql", "forward"),
            reverse_sql=sql_file(__file__, "ratio_snapshot_partitions.sql", "reverse"),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
