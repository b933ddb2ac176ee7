"""The oversight pages of the admin: scenarios changed through the service (audited, bad input refused with
nothing written); runs, their rows and the daily reports only read."""

import json
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from core.calendar import HONG_KONG
from financing.lending.services import drawdown_create
from oversight.models import DailyReport, StressScenario
from oversight.reports import daily_report_make
from oversight.stress import stress_run
from tests.accounts.factories import StaffFactory
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as
from tests.oversight.factories import scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    return stress_run(scenario=scenario({"BTC": "-0.40"}), actor=SYSTEM)


def form(scenario: StressScenario, **changes) -> dict:
    data = {"name": scenario.name, "description": scenario.description, "source": scenario.source,
            "shocks": json.dumps(scenario.shocks), "sale_cost": scenario.sale_cost or "",
            "active": "on" if scenario.active else ""}  # fmt: skip
    return {**data, **changes}


def test_a_risk_officer_changes_a_scenario_in_the_admin_audited(client, run):
    officer = StaffFactory(role="Risk officer")
    login_as(client, officer)
    stressed = run.scenario
    url = reverse("admin:oversight_stressscenario_change", args=[stressed.pk])
    response = client.post(
        url, form(stressed, shocks='{"BTC": "-0.5", "security": "-0.1"}', sale_cost="0.03")
    )
    assert response.status_code == 302
    stressed.refresh_from_db()
    assert (stressed.shocks, stressed.sale_cost) == ({"BTC": "-0.5", "security": "-0.1"}, D("0.0300"))
    event = AuditEvent.objects.get(action="stress_scenario.updated")
    assert event.actor == officer
    assert event.before == {"shocks": {"BTC": "-0.40"}, "sale_cost": None}
    assert event.after["shocks"] == {"BTC": "-0.5", "security": "-0.1"}
    assert run.shocks == {"BTC": "-0.40"}  # the run keeps what it ran with


def test_a_scenario_with_bad_shocks_is_refused_and_nothing_is_written(client, run):
    login_as(client, StaffFactory(role="Risk officer"))
    stressed = run.scenario
    url = reverse("admin:oversight_stressscenario_change", args=[stressed.pk])
    response = client.post(url, form(stressed, shocks='{"DOGE": "-0.5"}'), follow=True)
    assert "DOGE" in response.content.decode()
    stressed.refresh_from_db()
    assert stressed.shocks == {"BTC": "-0.40"}
    assert not AuditEvent.objects.filter(action="stress_scenario.updated").exists()


def test_a_scenario_added_in_the_admin_goes_through_the_service(client, market):
    login_as(client, StaffFactory(role="Risk officer"))
    response = client.post(reverse("admin:oversight_stressscenario_add"), {
        "key": "", "name": "Crypto winter", "description": "", "source": "hypothetical",
        "shocks": '{"crypto": "-0.6"}', "sale_cost": "", "active": "on"})  # fmt: skip
    assert response.status_code == 302
    added = StressScenario.objects.get(key="crypto-winter")
    assert (added.source, added.shocks) == ("hypothetical", {"crypto": "-0.6"})
    assert AuditEvent.objects.filter(action="stress_scenario.created").count() == 1


@pytest.mark.parametrize("role", ["Credit officer", "Operations", "Compliance"])
def test_other_roles_only_read_scenarios(client, run, role):
    login_as(client, StaffFactory(role=role))
    url = reverse("admin:oversight_stressscenario_change", args=[run.scenario.pk])
    assert client.get(url).status_code == 200
    client.post(url, form(run.scenario, name="Renamed"))
    run.scenario.refresh_from_db()
    assert run.scenario.name != "Renamed"


@pytest.mark.parametrize(
    "page",
    [
        "admin:oversight_stressscenario_changelist",
        "admin:oversight_stressrun_changelist",
        "admin:oversight_stressresult_changelist",
        "admin:oversight_dailyreport_changelist",
    ],
)
def test_runs_rows_and_reports_are_read_in_the_admin(client, run, page):
    daily_report_make(day=timezone.localdate(timezone=HONG_KONG), actor=SYSTEM)
    login_as(client, StaffFactory(role="Risk officer"))
    body = client.get(reverse(page)).content.decode()
    if not page.endswith("stressscenario_changelist"):  # nobody adds a run, a row or a report by hand
        assert client.get(reverse(page.replace("_changelist", "_add"))).status_code == 403
    if page.endswith("stressrun_changelist"):
        assert reverse("console:stress_run", args=[run.pk]) in body
    if page.endswith("dailyreport_changelist"):
        assert reverse("console:daily_report", args=[DailyReport.objects.get().day.isoformat()]) in body
    change = client.get(reverse("admin:oversight_stressrun_change", args=[run.pk]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()  # read-only
