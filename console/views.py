"""The console's pages and the fragments htmx polls: thin over ``console.selectors`` and the services."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from console.access import staff_required
from console.selectors import AtRiskFilters, at_risk_page, firm_overview

POLL_SECONDS = 5  # lists are at most this much behind the sweep (the issue asks for 10 s at most)


def _page(request: HttpRequest, template: str, context: dict, *, section: str) -> HttpResponse:
    return render(request, template, {"section": section, "poll_seconds": POLL_SECONDS, **context})


@require_safe
@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    return _page(request, "console/overview.html", {"overview": firm_overview()}, section="overview")


@require_safe
@staff_required
def overview_live(request: HttpRequest) -> HttpResponse:
    return _page(
        request, "console/fragments/overview.html", {"overview": firm_overview()}, section="overview"
    )


@require_safe
@staff_required
def at_risk(request: HttpRequest) -> HttpResponse:
    page = at_risk_page(AtRiskFilters.from_query(request.GET))
    return _page(request, "console/at_risk.html", {"at_risk": page}, section="at_risk")


@require_safe
@staff_required
def at_risk_rows(request: HttpRequest) -> HttpResponse:
    page = at_risk_page(AtRiskFilters.from_query(request.GET))
    return _page(request, "console/fragments/at_risk_rows.html", {"at_risk": page}, section="at_risk")
