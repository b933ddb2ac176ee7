"""The admin's pages for stress scenarios (added and changed through the services, audited), and for the
stress runs, their per-facility rows and the daily reports, which nobody edits: a run or a report is made by
the platform (docs/stress-tests.md, docs/reports.md); the staff console shows them with charts and exports."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin, ServiceAdminMixin
from oversight.models import DailyReport, StressResult, StressRun, StressScenario
from oversight.stress import SCENARIO_FIELDS, stress_scenario_create, stress_scenario_update


@admin.register(StressScenario)
class StressScenarioAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["key", "name", "in_library", "active", "sale_cost", "created_by", "created_at"]
    list_filter = ["in_library", "active"]
    search_fields = ["key", "name"]
    fields = ["key", "name", "description", "source", "shocks", "sale_cost", "active"]

    def get_readonly_fields(self, request, obj=None):
        # The key names the scenario to the API and the console, and its runs keep pointing at it.
        return ["key"] if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and "key" in form.base_fields:
            form.base_fields["key"].required = False  # empty: made from the name
        return form

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its runs keep it; a scenario nobody wants any more is made inactive

    def save_model(self, request, obj: StressScenario, form, change: bool) -> None:
        if change:
            stress_scenario_update(
                scenario=obj, actor=request.user, **{name: form.cleaned_data[name] for name in form.changed_data
                                                     if name in SCENARIO_FIELDS}
            )  # fmt: skip
            return
        created = stress_scenario_create(
            name=obj.name, shocks=obj.shocks, actor=request.user, sale_cost=obj.sale_cost, key=obj.key,
            description=obj.description, source=obj.source, active=obj.active,
        )  # fmt: skip
        obj.pk, obj.key, obj.shocks = created.pk, created.key, created.shocks


@admin.register(StressRun)
class StressRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "scenario", "status", "trigger", "started_at", "duration_ms", "facilities", "shortfall",
                    "console"]  # fmt: skip
    list_filter = ["status", "trigger", "scenario"]
    list_select_related = ["scenario"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-id"]

    @admin.display(description="in the console")
    def console(self, run: StressRun) -> str:
        return format_html('<a href="{}">run #{}</a>', reverse("console:stress_run", args=[run.pk]), run.pk)


@admin.register(StressResult)
class StressResultAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["run", "facility", "status_before", "status_after", "ratio_before", "ratio_after",
                    "repayment_to_cure", "sale_proceeds", "shortfall"]  # fmt: skip
    list_filter = ["status_after", "run__scenario"]
    list_select_related = ["run__scenario", "facility"]
    raw_id_fields = ["run", "facility"]
    show_full_result_count = False  # a run of the whole book has a row per facility


@admin.register(DailyReport)
class DailyReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["day", "made_at", "made_by_label", "trigger", "emailed_at", "console"]
    list_filter = ["trigger"]
    date_hierarchy = "day"
    ordering = ["-day"]

    @admin.display(description="in the console")
    def console(self, report: DailyReport) -> str:
        return format_html('<a href="{}">{}</a>', reverse("console:daily_report", args=[report.day.isoformat()]),
                           report.day)  # fmt: skip
