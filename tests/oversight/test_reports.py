"""The daily margin report, rebuilt as of the end of a past day from the ledger, that day's prices and the
sweep's snapshots, checked against a small book worked by hand; kept, exported, e-mailed, in the API."""

import csv
import datetime
import io

import pytest
import time_machine
from django.test import Client

from accounts import roles
from accounts.audit import SYSTEM
from core.calendar import HONG_KONG
from core.exceptions import InvalidInput
from financing.lending.services import drawdown_create
from financing.models import MarginCall
from financing.monitoring.cycle import monitoring_cycle_run
from notifications.models import OutboxMessage
from oversight.models import DailyReport
from oversight.reports import daily_report_make
from oversight.tasks import daily_report_task
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import price, standard_market
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as

pytestmark = pytest.mark.django_db

WED, THU, FRI = datetime.date(2026, 12, 2), datetime.date(2026, 12, 3), datetime.date(2026, 12, 4)


def at(day: datetime.date, hour: int):
    return time_machine.travel(
        datetime.datetime.combine(day, datetime.time(hour), tzinfo=HONG_KONG), tick=False
    )


@pytest.fixture
def book(db):
    """Wednesday: A holds 1 BTC (US$100,000 × 7.8) and owes 250,000; B holds 3,000 Tencent (HK$400, limit 50%) and
    10 ETH (US$4,000) and owes 500,000. Thursday: BTC at US$70,000, and A gets a margin call. Friday: B draws
    20,000 more."""
    with at(WED, 10):
        standard_market()
        a = facility_with_pool(holdings={"BTC": "1"})
        drawdown_create(facility=a, amount="250000.00", actor=SYSTEM)
        b = facility_with_pool(holdings={"0700.HK": "3000", "ETH": "10"})
        drawdown_create(facility=b, amount="500000.00", actor=SYSTEM)
        monitoring_cycle_run(trigger="test")
    with at(THU, 10):
        price("BTC", "70000")
        monitoring_cycle_run(symbols=["BTC"], trigger="test")
    with at(FRI, 10):
        drawdown_create(facility=b, amount="20000.00", actor=SYSTEM)
    return a, b


def table(report, title):
    return next(t for t in report.content["tables"] if t["title"] == title)


def test_wednesday_as_the_ledger_and_the_prices_stood_then(book):
    a, b = book
    with at(FRI, 18):
        report = daily_report_make(day=WED, actor=SYSTEM)
    f = report.figures
    assert (f["total_lending"], f["total_debt"]) == ("750000.00", "750000.00")
    assert (f["lending_cap"], f["lending_share_of_cap"]) == ("1000000000.00", "0.0008")
    # BTC 780,000 (margin 312,000); ETH 312,000 (109,200); Tencent 1,200,000 counted up to half of the pool's
    # 1,512,000 = 756,000 × 0.7 = 529,200.
    rows = {r[1]: r[2:] for r in table(report, "Collateral by class and asset")["rows"]}
    assert rows["BTC"] == ["1", "780000.00", "312000.00", "0.3403"]
    assert rows["ETH"] == ["10", "312000.00", "109200.00", "0.1361"]
    assert rows["0700.HK"] == ["3000", "1200000.00", "529200.00", "0.5236"]
    assert f["collateral_market_value"] == "2292000.00"
    assert f["facilities_by_status"] == {"ok": 2}
    assert f["facilities_by_status_snapshots"] == {"ok": 2}
    largest = table(report, "Twenty largest clients by loan")["rows"]
    assert [(r[1], r[2], r[4]) for r in largest] == [
        (b.reference, "500000.00", "0.0100"),
        (a.reference, "250000.00", "0.0050"),
    ]
    assert table(report, "Securities with the largest share of collateral")["rows"] == [
        ["0700.HK", "1200000.00", "0.5236"]
    ]
    assert table(report, "Open margin calls")["rows"] == []
    # The capital view: A's only collateral is BTC, at a 100% haircut nothing: 250,000 short. B keeps 529,200.
    capital = table(report, "Capital view: BTC and ETH at a 100% haircut")["rows"]
    assert [(r[0], r[2], r[4], r[5]) for r in capital] == [(a.reference, "250000.00", "0.00", "250000.00")]


def test_thursday_has_the_call_and_friday_the_new_loan(book):
    a, _ = book
    with at(FRI, 18):
        thursday = daily_report_make(day=THU, actor=SYSTEM)
        friday = daily_report_make(day=FRI, actor=SYSTEM)
    # Thursday: BTC at US$70,000: A's margin value 218,400, ratio 114.47%: a call for 250,000 − 0.85 × 218,400.
    [call] = table(thursday, "Open margin calls")["rows"]
    assert (call[1], call[7]) == (a.reference, "64360.00")
    assert thursday.figures["facilities_by_status"] == {"margin_call": 1, "ok": 1}
    assert thursday.figures["total_lending"] == "750000.00"
    assert friday.figures["total_lending"] == "770000.00"
    assert [c[4] for c in table(friday, "Open margin calls")["rows"]] == [
        "1d 14h"
    ]  # 10:00 Thursday to the end of Friday: 38 hours


def test_a_call_issued_with_no_margin_value_is_at_an_infinite_ratio(book):
    a, _ = book
    MarginCall.objects.filter(facility=a).update(
        ratio_at_issue=None
    )  # as kept when nothing stood against the debt
    with at(FRI, 18):
        thursday = daily_report_make(day=THU, actor=SYSTEM)
    [call] = table(thursday, "Open margin calls")["rows"]
    assert call[6] == "infinite"  # not empty: the report says what the ratio was


def test_a_report_is_kept_made_again_audited_and_e_mailed(book, settings):
    settings.STAFF_ALERT_EMAILS = ["risk@broker.example"]
    with at(FRI, 18):
        first = daily_report_make(day=FRI, actor=SYSTEM, email=True)
        again = daily_report_make(day=FRI, actor=SYSTEM)
    assert first.pk == again.pk
    assert DailyReport.objects.count() == 1
    mail = OutboxMessage.objects.get(event__type="report.daily_margin")
    assert mail.recipient == "risk@broker.example"
    assert mail.event.payload["total_lending"] == "770000.00"
    with at(FRI, 18), pytest.raises(InvalidInput, match="has not happened yet"):
        daily_report_make(day=datetime.date(2026, 12, 5), actor=SYSTEM)


def test_the_schedule_makes_it_on_business_days_only(book):
    with at(datetime.date(2026, 12, 5), 18):  # a Saturday
        assert daily_report_task() is None
    with at(FRI, 18):
        assert DailyReport.objects.get(pk=daily_report_task()).day == FRI


def test_the_console_shows_and_exports_a_kept_report_and_the_api_serves_it(book):
    with at(FRI, 18):
        daily_report_make(day=WED, actor=SYSTEM)
    browser = Client()
    login_as(browser, StaffFactory(role=roles.COMPLIANCE))
    page = browser.get("/console/reports/2026-12-02/").content.decode()
    assert "Daily margin financing report, 2026-12-02" in page
    # Each figure reads as on every page: amounts in HK$, shares and ratios as percentages, no ratio as ∞.
    assert ">HK$750,000.00<" in page  # total lending
    assert ">0.08%<" in page  # lending against the firm's cap
    assert ">34.03%<" in page  # BTC's share of the collateral
    assert ">80.13%<" in page  # A's ratio: 250,000 / 312,000
    assert ">∞<" in page  # A in the capital view: nothing against its debt
    assert "infinite" not in page
    assert "750000.00" not in page
    kept = browser.get("/console/reports/").content.decode()
    assert ">HK$750,000.00<" in kept  # the list of kept reports reads the same way
    lines = list(
        csv.reader(io.StringIO(browser.get("/console/reports/2026-12-02/export.csv").content.decode()))
    )
    assert ["Total lending (principal, HKD)", "750000.00"] in lines
    assert browser.get("/console/reports/2026-12-02/export.pdf").content.startswith(b"%PDF")
    assert browser.get("/console/reports/2026-12-02/export.xlsx").status_code == 200
    assert browser.post("/console/reports/make/", {"day": "2026-12-03"}).status_code == 302
    assert not DailyReport.objects.filter(day=THU).exists()  # compliance reads, never makes
    officer = Client()
    login_as(officer, StaffFactory(role=roles.RISK_OFFICER))
    with at(FRI, 18):
        assert officer.post("/console/reports/make/", {"day": "2026-12-03"}).status_code == 302
    assert DailyReport.objects.filter(day=THU).exists()
    thursday = browser.get("/console/reports/2026-12-03/").content.decode()
    # The open call: issued at 10:00 Hong Kong time, at a ratio of 114.47%, for HK$64,360.00.
    assert all(f">{shown}<" in thursday for shown in ("2026-12-03 10:00 HKT", "114.47%", "HK$64,360.00"))
    from rest_framework.test import APIClient

    api = APIClient()
    login_as(api, StaffFactory(role=roles.COMPLIANCE))
    body = api.get("/api/v1/daily-reports/2026-12-02/").json()
    assert body["figures"]["total_lending"] == "750000.00"
