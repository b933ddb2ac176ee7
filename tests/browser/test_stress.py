"""The stress pages in Chromium: a risk officer runs a library scenario and reads its charts and rows."""

import pytest
from playwright.sync_api import Page, expect

from accounts import roles
from accounts.audit import SYSTEM
from financing.lending.services import drawdown_create
from financing.monitoring.cycle import monitoring_cycle_run
from oversight.stress import library_ensure
from tests.accounts.factories import StaffFactory
from tests.browser.harness import assert_no_serious_accessibility_violations, docs_screenshot
from tests.collateral.factories import standard_market
from tests.financing.factories import facility_with_pool


@pytest.fixture
def book(transactional_db):
    # The library is reference data a migration writes; an earlier transactional test's flush empties it.
    library_ensure()
    standard_market()
    calm = facility_with_pool(holdings={"BTC": "1", "0700.HK": "1000"})
    drawdown_create(facility=calm, amount="300000.00", actor=SYSTEM)
    stressed = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=stressed, amount="250000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    return stressed


def test_a_risk_officer_runs_a_scenario_and_reads_the_results(page: Page, sign_in, book):
    sign_in(StaffFactory(username="risk-browser", role=roles.RISK_OFFICER))
    page.goto("/console/stress/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Stress tests")
    page.locator("tr[data-scenario='2020-03-12']").get_by_role("button", name="Run now").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("12 March 2020")
    expect(page.locator(f"tr[data-facility='{book.reference}']")).to_contain_text("132.66%")
    expect(page.locator("canvas[data-chart='ratios-after']")).to_have_attribute("data-chart-drawn", "true")
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "console-stress-run")
    page.goto("/console/stress/")
    expect(page.locator("canvas[data-chart='shortfall-by-scenario']")).to_have_attribute(
        "data-chart-drawn", "true"
    )
    docs_screenshot(page, "console-stress-library")


def test_the_daily_report_reads_as_a_page(page: Page, sign_in, book):
    sign_in(StaffFactory(username="risk-report", role=roles.RISK_OFFICER))
    page.goto("/console/reports/")
    page.get_by_role("button", name="Make the report").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Daily margin financing report")
    expect(page.locator("#report-lines")).to_contain_text("HK$550,000.00")  # 300,000 + 250,000 lent
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "console-daily-report")
