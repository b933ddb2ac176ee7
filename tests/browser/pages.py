"""Pages that exist only for the browser tests: the layout with a chart, an htmx fragment and an inline
script and style that the content security policy must stop."""

from decimal import Decimal
from pathlib import Path

from django.http import HttpResponse
from django.template import engines
from django.urls import include, path

TEMPLATES = Path(__file__).resolve().parent / "templates"


def render(request, name: str, context: dict) -> HttpResponse:
    template = engines["django"].from_string((TEMPLATES / name).read_text(encoding="utf-8"))
    return HttpResponse(template.render(context, request))


def foundation(request):
    chart = {
        "type": "bar",
        "valueFormat": "hkd",
        "data": {
            "labels": ["Loan", "Collateral"],
            "datasets": [{"label": "HKD", "data": [Decimal("1200000.00"), Decimal("2500000.50")]}],
        },
    }
    return render(request, "foundation.html", {"amount": Decimal("1234567.89"), "chart": chart})


def fragment(request):
    if not request.htmx:  # django-htmx: a fragment answers htmx only
        return HttpResponse(status=400)
    chart = {
        "type": "line",
        "valueFormat": "percent",
        "data": {"labels": ["a", "b"], "datasets": [{"data": [1, 2]}]},
    }
    return render(request, "fragment.html", {"amount": Decimal("-42.5"), "chart": chart})


checks = (
    [path("foundation/", foundation, name="foundation"), path("fragment/", fragment, name="fragment")],
    "browser_checks",
)
urlpatterns = [path("browser-checks/", include(checks)), path("", include("config.urls"))]
