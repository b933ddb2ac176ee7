"""The console's stress-test pages (the library, a run's results and exports), the daily margin report and
the forced-sale explanation: thin over ``oversight``'s selectors and services."""

from __future__ import annotations

import datetime

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from console.access import staff_required
from console.stress.display import report_shown
from console.stress.forms import ScenarioForm
from core.exceptions import DomainError
from financing.enums import MarginStatus
from financing.models import ForcedSale
from oversight.explanations import explanation_report, forced_sale_explanation
from oversight.exports import FORMATS, report_bytes, report_pdf
from oversight.models import DailyReport, StressRun, StressScenario
from oversight.reports import HONG_KONG, REPORT_PERMISSION, daily_report_make, report_from_json
from oversight.selectors import (
    firm_shares,
    ratio_chart,
    ratio_distribution,
    run_comparisons,
    run_report,
    run_rows,
    sale_volume_rows,
    scenario_library,
    shortfall_chart,
)
from oversight.stress import RUN_PERMISSION, stress_run, stress_scenario_create

ROWS_PER_PAGE = 50


def _download(content: bytes, format: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=FORMATS[format])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{format}"'
    return response


@require_safe
@staff_required
def stress_library(request: HttpRequest) -> HttpResponse:
    rows = scenario_library()
    return render(request, "console/stress/library.html", {
        "section": "stress", "rows": rows, "chart": shortfall_chart(rows), "form": ScenarioForm(),
        "may_run": request.user.has_perm(RUN_PERMISSION),
    })  # fmt: skip


@require_POST
@staff_required
def stress_run_create(request: HttpRequest, pk: int) -> HttpResponse:
    scenario = get_object_or_404(StressScenario, pk=pk)
    try:
        run = stress_run(scenario=scenario, actor=request.user)
    except DomainError as error:
        messages.error(request, str(error))
        return redirect("console:stress_library")
    messages.success(
        request, _("Stress test #%(run)s of %(name)s finished.") % {"run": run.pk, "name": scenario.name}
    )
    return redirect("console:stress_run", pk=run.pk)


@require_POST
@staff_required
def stress_scenario_add(request: HttpRequest) -> HttpResponse:
    form = ScenarioForm(request.POST)
    if form.is_valid():
        try:
            scenario = stress_scenario_create(
                name=form.cleaned_data["name"], shocks=form.cleaned_data["shocks"],
                sale_cost=form.cleaned_data["sale_cost"] or None, actor=request.user,
            )  # fmt: skip
        except DomainError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Scenario %(name)s added.") % {"name": scenario.name})
            return redirect("console:stress_library")
    rows = scenario_library()
    return render(request, "console/stress/library.html", {
        "section": "stress", "rows": rows, "chart": shortfall_chart(rows), "form": form,
        "may_run": request.user.has_perm(RUN_PERMISSION),
    }, status=400)  # fmt: skip


@require_safe
@staff_required
def stress_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(StressRun.objects.select_related("scenario", "previous"), pk=pk)
    status = request.GET.get("status", "")
    if status not in MarginStatus.values:
        status = ""
    rows = run_rows(run, status=status, troubled_only=not status)
    page = Paginator(rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    distribution = ratio_distribution(run)
    return render(request, "console/stress/run.html", {
        "section": "stress", "run": run, "comparisons": run_comparisons(run), "shares": firm_shares(run),
        "distribution": distribution, "chart": ratio_chart(distribution), "page": page, "status": status,
        "statuses": MarginStatus.choices, "formats": list(FORMATS), "volume": sale_volume_rows(run),
    })  # fmt: skip


@require_safe
@staff_required
def stress_run_export(request: HttpRequest, pk: int, format: str) -> HttpResponse:
    if format not in FORMATS:
        raise Http404(f"No export as {format}.")
    run = get_object_or_404(StressRun.objects.select_related("scenario"), pk=pk)
    return _download(report_bytes(run_report(run), format), format, f"stress-test-{run.pk}")


@require_safe
@staff_required
def forced_sale_explained(request: HttpRequest, pk: int) -> HttpResponse:
    sale = get_object_or_404(ForcedSale.objects.select_related("facility__client", "margin_call"), pk=pk)
    return render(request, "console/stress/forced_sale_explained.html", {
        "section": "forced_sales", "explanation": forced_sale_explanation(sale),
    })  # fmt: skip


@require_safe
@staff_required
def forced_sale_explained_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    sale = get_object_or_404(ForcedSale.objects.select_related("facility__client", "margin_call"), pk=pk)
    return _download(
        report_pdf(explanation_report(forced_sale_explanation(sale))), "pdf", f"forced-sale-{sale.pk}"
    )


# --- the daily margin report ---------------------------------------------------------------------------


@require_safe
@staff_required
def daily_reports(request: HttpRequest) -> HttpResponse:
    return render(request, "console/stress/reports.html", {
        "section": "reports", "reports": DailyReport.objects.all()[:60],
        "may_make": request.user.has_perm(REPORT_PERMISSION), "today": timezone.localdate(timezone=HONG_KONG),
    })  # fmt: skip


@require_POST
@staff_required
def daily_report_create(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(REPORT_PERMISSION):
        messages.error(request, _("Only risk officers may make a report."))
        return redirect("console:daily_reports")
    try:
        day = datetime.date.fromisoformat(request.POST.get("day", ""))
        report = daily_report_make(day=day, actor=request.user)
    except ValueError:
        messages.error(request, _("Give the day as YYYY-MM-DD."))
        return redirect("console:daily_reports")
    except DomainError as error:
        messages.error(request, str(error))
        return redirect("console:daily_reports")
    return redirect("console:daily_report", day=report.day.isoformat())


@require_safe
@staff_required
def daily_report_detail(request: HttpRequest, day: str) -> HttpResponse:
    report = _kept_report(day)
    return render(request, "console/stress/report.html", {
        "section": "reports", "report": report, "content": report_shown(report_from_json(report.content)),
        "formats": list(FORMATS),
    })  # fmt: skip


@require_safe
@staff_required
def daily_report_export(request: HttpRequest, day: str, format: str) -> HttpResponse:
    if format not in FORMATS:
        raise Http404(f"No export as {format}.")
    report = _kept_report(day)
    content = report_bytes(report_from_json(report.content), format)
    return _download(content, format, f"margin-report-{report.day.isoformat()}")


def _kept_report(day: str) -> DailyReport:
    try:
        return get_object_or_404(DailyReport, day=datetime.date.fromisoformat(day))
    except ValueError:
        raise Http404("Not a day.") from None
