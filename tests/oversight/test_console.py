"""The console's stress pages and exports, and the forced-sale explanation (from stored records only)."""

import csv
import io
import re
from decimal import Decimal

import pytest
from django.test import Client
from openpyxl import load_workbook

from accounts import roles
from accounts.audit import SYSTEM
from fake_exchange.pytest_plugin import fake_bitstamp  # noqa: F401  (fixture)
from financing.lending.services import drawdown_create
from oversight.models import StressRun, StressScenario
from oversight.stress import stress_run
from tests.accounts.factories import StaffFactory
from tests.financing.factories import facility_with_pool
from tests.financing.test_forced_sales import run as run_sale
from tests.financing.test_forced_sales import sale, venue  # noqa: F401  (fixtures)
from tests.helpers import login_as

pytestmark = pytest.mark.django_db


def browser(role):
    client = Client()
    login_as(client, StaffFactory(role=role))
    return client


@pytest.fixture
def book(market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    return facility


def test_a_risk_officer_runs_a_scenario_from_the_library_and_reads_it(book):
    officer = browser(roles.RISK_OFFICER)
    library = officer.get("/console/stress/")
    assert library.status_code == 200
    assert "12 March 2020" in library.content.decode()
    assert "Run now" in library.content.decode()
    scenario = StressScenario.objects.get(key="crypto-50")
    answer = officer.post(f"/console/stress/scenarios/{scenario.pk}/run/")
    run = StressRun.objects.get(scenario=scenario)
    assert answer.status_code == 302
    assert answer.url == f"/console/stress/runs/{run.pk}/"
    page = officer.get(answer.url).content.decode()
    assert book.reference in page  # BTC −50%: 250,000 / 156,000 = 160.26%: a forced sale
    assert "160.26%" in page
    assert 'data-chart="ratios-after"' in page
    assert "shortfall-by-scenario" in officer.get("/console/stress/").content.decode()


def test_compliance_reads_but_cannot_run_or_add(book):
    reader = browser(roles.COMPLIANCE)
    assert "Run now" not in reader.get("/console/stress/").content.decode()
    scenario = StressScenario.objects.get(key="crypto-50")
    reader.post(f"/console/stress/scenarios/{scenario.pk}/run/")
    reader.post("/console/stress/scenarios/", {"name": "mine", "shocks": "BTC -0.1"})
    assert not StressRun.objects.exists()
    assert not StressScenario.objects.filter(name="mine").exists()


def test_adding_a_scenario_from_the_console(book):
    officer = browser(roles.RISK_OFFICER)
    answer = officer.post(
        "/console/stress/scenarios/",
        {"name": "Peg breaks", "shocks": "USD/HKD -0.05\ncrypto -0.2", "sale_cost": "0.01"},
    )
    assert answer.status_code == 302
    made = StressScenario.objects.get(name="Peg breaks")
    assert (made.shocks, made.sale_cost) == ({"USD/HKD": "-0.05", "crypto": "-0.2"}, Decimal("0.01"))
    library = re.sub(r"<[^>]+>", "", officer.get("/console/stress/").content.decode())
    assert "USD/HKD \u22125%, crypto \u221220%; sale cost 1.00%" in library  # as defined, in percent
    bad = officer.post("/console/stress/scenarios/", {"name": "Bad", "shocks": "DOGE -0.5"})
    assert bad.status_code == 400
    assert "DOGE: not an asset" in bad.content.decode()


def test_a_run_exports_as_csv_xlsx_and_pdf(book):
    run = stress_run(scenario=StressScenario.objects.get(key="crypto-50"), actor=SYSTEM)
    officer = browser(roles.COMPLIANCE)
    as_csv = officer.get(f"/console/stress/runs/{run.pk}/export.csv")
    assert as_csv["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(as_csv.content.decode())))
    assert ["Repayments that cure (HKD)", "117400.00"] in lines  # 250,000 − 0.85 × 156,000
    row = next(line for line in lines if line and line[0] == book.reference)
    assert row[7:9] == ["1.60256410", "forced_sale"]
    as_xlsx = officer.get(f"/console/stress/runs/{run.pk}/export.xlsx")
    book_sheets = load_workbook(io.BytesIO(as_xlsx.content))
    facilities = book_sheets[book_sheets.sheetnames[-1]]
    assert next(cell.value for cell in facilities[2]) == book.reference
    as_pdf = officer.get(f"/console/stress/runs/{run.pk}/export.pdf")
    assert as_pdf.content.startswith(b"%PDF")
    assert as_pdf["Content-Type"] == "application/pdf"
    assert officer.get(f"/console/stress/runs/{run.pk}/export.doc").status_code == 404


def test_a_forced_sale_is_explained_from_its_stored_records(sale, venue):  # noqa: F811
    run_sale(sale)
    page = browser(roles.COMPLIANCE).get(f"/console/forced-sales/{sale.pk}/explained/")
    assert page.status_code == 200
    text = page.content.decode()
    # The plan as first made (the stored plan now shows nothing left to sell), its order and fill.
    assert "0.22246457" in text
    assert f"FS{sale.pk}-1" in text
    assert "121.43%" in text  # the ratio at request: 265,200 / 218,400
    # The first plan's figures read as every page reads them: amounts in HK$ with thousands, time in HKT.
    assert "on a debt of HK$265,200.00 and a margin value of HK$218,400.00" in text
    assert re.search(r"Made \d{4}-\d\d-\d\d \d\d:\d\d HKT", text)
    assert "US$70,000.00" in text  # prices in their own currency, quantities without trailing zeros
    assert "0.222464570000" not in text
    assert "0.00%" in text  # filled at the oracle's price: no slippage
    assert "forced_sale.filled" in text
    pdf = browser(roles.COMPLIANCE).get(f"/console/forced-sales/{sale.pk}/explained.pdf")
    assert pdf.content.startswith(b"%PDF")


def test_the_pages_are_for_staff_only(book):
    assert Client().get("/console/stress/").status_code == 302
