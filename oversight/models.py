"""Stress scenarios, their runs on the live book and each run's figures per facility (docs/stress-tests.md)."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from collateral.models import fraction_field
from financing.enums import MarginStatus
from financing.models import Facility, hkd_amount_field, ratio_field
from oversight.enums import StressRunStatus, StressTrigger


class StressScenario(models.Model):
    """A set of shocks: a relative change per asset (``"BTC": "-0.40"``), per class (``"crypto"``,
    ``"security"``, ``"cash"``; an asset's own shock wins over its class's) and per FX rate
    (``"USD/HKD": "+0.005"``), and optionally the sale cost a forced sale would meet in it."""

    key = models.SlugField(max_length=60, unique=True, help_text="how the API and the console name it")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source = models.TextField(blank=True, help_text="where its figures come from (docs/stress-tests.md)")
    shocks = models.JSONField(default=dict, help_text='relative changes as strings, e.g. {"BTC": "-0.40"}')
    sale_cost = fraction_field(
        "sale cost", null=True, blank=True, help_text="empty: each facility's policy's sale cost allowance"
    )
    in_library = models.BooleanField(default=False, help_text="one of the platform's own scenarios")
    active = models.BooleanField(default=True, help_text="run with the library each month")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-in_library", "pk"]
        permissions = [("run_stress_test", "Can run a stress test")]

    def __str__(self) -> str:
        return self.name


class StressRun(models.Model):
    """One scenario applied read-only to the live book, with the firm's figures after the shock. The
    scenario's shocks and sale cost are copied: a run says what it was run with even if the scenario changes."""

    scenario = models.ForeignKey(StressScenario, on_delete=models.PROTECT, related_name="runs")
    shocks = models.JSONField(default=dict)
    sale_cost = fraction_field("sale cost", null=True, blank=True)
    trigger = models.CharField(max_length=12, choices=StressTrigger.choices, default=StressTrigger.ON_DEMAND)
    status = models.CharField(max_length=10, choices=StressRunStatus.choices, default=StressRunStatus.RUNNING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="the previous finished run of the same scenario",
    )  # fmt: skip
    prices = models.JSONField(
        encoder=DjangoJSONEncoder,
        default=dict,
        help_text="per asset: price before and after, HKD per unit after",
    )
    # The firm after the shock.
    facilities = models.PositiveIntegerField(default=0)
    by_status_before = models.JSONField(default=dict)
    by_status_after = models.JSONField(default=dict)
    market_value_before = hkd_amount_field("market value before", default=0)
    market_value_after = hkd_amount_field("market value after", default=0)
    margin_value_before = hkd_amount_field("margin value before", default=0)
    margin_value_after = hkd_amount_field("margin value after", default=0)
    amount_due = hkd_amount_field("repayments that cure", default=0)
    sale_proceeds = hkd_amount_field("forced-sale proceeds", default=0)
    shortfall = hkd_amount_field("shortfall", default=0)
    capital = hkd_amount_field("capital", default=0)
    lending = hkd_amount_field("lending (debt)", default=0)
    lending_after_sales = hkd_amount_field("lending after the forced sales", default=0)
    lending_cap = hkd_amount_field("lending cap", default=0)
    sale_volume = models.JSONField(
        encoder=DjangoJSONEncoder, default=dict,
        help_text="per asset: quantity and market value to sell, the day's liquidity and the share of it",
    )  # fmt: skip

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["scenario", "-started_at"])]

    def __str__(self) -> str:
        return f"Stress run #{self.pk}: {self.scenario} ({self.started_at:%Y-%m-%d %H:%M})"


class StressResult(models.Model):
    """One facility in a stress run: before (its margin state, as last swept) and after the shock, what cures
    it, and the forced sale it would meet. The table keeps 30% of each page free (oversight 0007), so that
    writing a row's plan after the row stays on its page."""

    # No database key and no index of its own: a run writes its rows in the transaction that made the run,
    # in one statement (a key would check each of 100,000 rows at commit), and the rows go only with their
    # run (the ORM's cascade). The unique (run, facility) index serves every look-up by run.
    run = models.ForeignKey(
        StressRun, on_delete=models.CASCADE, related_name="results", db_constraint=False, db_index=False
    )
    # No database key: a run writes a row per open facility in one statement, and facilities are never deleted.
    facility = models.ForeignKey(
        Facility, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    market_value_before = hkd_amount_field("market value before", null=True, blank=True)
    margin_value_before = hkd_amount_field("margin value before", null=True, blank=True)
    debt_before = hkd_amount_field("debt before", null=True, blank=True)
    ratio_before = ratio_field("margin ratio before", null=True, blank=True)
    status_before = models.CharField(max_length=12, choices=MarginStatus.choices, blank=True)
    market_value = hkd_amount_field("market value after")
    margin_value = hkd_amount_field("margin value after")
    debt = hkd_amount_field("debt")
    ratio_after = ratio_field(
        "margin ratio after", null=True, blank=True, help_text="empty with debt: infinite"
    )
    status_after = models.CharField(max_length=12, choices=MarginStatus.choices)
    repayment_to_cure = hkd_amount_field("repayment that cures to target", default=0)
    sale_plan = models.JSONField(
        encoder=DjangoJSONEncoder, default=list, blank=True,
        help_text="the forced sale, in the policy's order: asset, quantity (whole lots), market value, proceeds",
    )  # fmt: skip
    sale_proceeds = hkd_amount_field("sale proceeds", default=0)
    ratio_after_sale = ratio_field("margin ratio after the sale", null=True, blank=True)
    shortfall = hkd_amount_field("shortfall", default=0)

    class Meta:
        ordering = ["run_id", "facility_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "facility"], name="one_stress_result_per_facility")
        ]
        # A run's rows by status after the shock, for those a call, a sale or a warning would reach (the console's
        # list, the API's filter, the sale planner): three in four rows of a run are "ok" and need no entry, and
        # each entry is written with its row by the run's one statement. A filter on "ok" reads the run's rows
        # by the unique index.
        indexes = [
            models.Index(
                fields=["run", "status_after"],
                condition=~Q(status_after__in=[MarginStatus.OK, MarginStatus.NO_DEBT]),
                name="stress_result_status_idx",
            )
        ]

    def __str__(self) -> str:
        return f"Run #{self.run_id}, facility {self.facility_id}: {self.status_after}"


class DailyReport(models.Model):
    """The daily margin financing report of one Hong Kong day, as made (kept: the page, the exports and the
    API read this record, never today's state)."""

    day = models.DateField(unique=True)
    made_at = models.DateTimeField()
    made_by_label = models.CharField(max_length=150)
    trigger = models.CharField(max_length=12, choices=StressTrigger.choices, default=StressTrigger.ON_DEMAND)
    figures = models.JSONField(encoder=DjangoJSONEncoder, default=dict, help_text="the headline figures")
    content = models.JSONField(
        encoder=DjangoJSONEncoder, default=dict, help_text="the report's lines and tables"
    )
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"Daily margin report {self.day.isoformat()}"
