"""The client portal in Chromium: the ratio and its gauge, the what-if, the call banner arriving live."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.audit import SYSTEM
from fake_exchange.pytest_plugin import fake_venues  # noqa: F401  (a fixture)
from financing.lending.services import drawdown_create
from financing.monitoring.cycle import monitoring_cycle_run
from financing.tasks import monitor_prices
from tests.browser.harness import PHONE, assert_no_serious_accessibility_violations, docs_screenshot
from tests.collateral.conftest import point_oracle_at
from tests.collateral.factories import price, standard_market
from tests.financing.factories import facility_with_pool
from tests.web.factories import ClientUserFactory


@pytest.fixture
def facility(transactional_db):
    """1 BTC and 1,000 Tencent; drawn to 70%."""
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1", "0700.HK": "1000"})
    drawdown_create(facility=facility, amount="414400.00", actor=SYSTEM)  # LV 312,000 + 280,000
    monitoring_cycle_run(trigger="test")
    return facility


@pytest.fixture
def owner(facility):
    return ClientUserFactory(client=facility.client, username="harbour")


def test_the_client_reads_the_ratio_and_plays_with_the_what_if(page: Page, sign_in, owner, facility):
    sign_in(owner)
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Facility {facility.reference}")
    expect(page.get_by_test_id("ratio-words")).to_have_text("Within limits — 70.0%")
    expect(page.get_by_role("cell", name="US$100,000.00")).to_be_visible()
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "portal-overview")
    page.get_by_label("BTC price").fill("-60")
    # BTC 312,000 of market value; Tencent capped at half the pool's 712,000: LV 124,800 + 249,200 = 374,000
    expect(page.get_by_test_id("what-if-words")).to_have_text("Margin call — 110.8%")
    page.set_viewport_size(PHONE)
    docs_screenshot(page, "portal-overview-phone")


def test_a_btc_fall_on_the_venues_brings_the_call_banner_and_its_countdown_without_a_reload(
    page: Page,
    sign_in,
    owner,
    facility,
    fake_venues,  # noqa: F811
    settings,
):
    point_oracle_at(settings, fake_venues)
    sign_in(owner)
    page.goto(f"/portal/facilities/{facility.pk}/")
    expect(page.get_by_role("heading", name="Margin call on")).to_have_count(0)
    # BTC falls to US$45,000 on every venue the oracle asks, in steps: the oracle's price is held for a second
    # person when it moves further than the band (25%) from the current one
    for step in ["78000", "61000", "48000", "45000"]:
        for venue in fake_venues:
            venue.set_price("BTC/USD", step)
        monitor_prices()  # the beat's task: the oracle's refresh, the sweep, the ladder
    banner = page.locator("#portal-alerts")
    # LV 140,400 + 262,850 (Tencent capped at half the pool): 102.8%, a margin call
    expect(banner.get_by_role("heading", name=f"Margin call on {facility.reference}")).to_be_visible(
        timeout=8000
    )
    countdown = banner.locator("[data-deadline]")
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=3000)  # it counts down, second by second
    expect(page.get_by_test_id("ratio-words")).to_have_text("Margin call — 102.8%", timeout=8000)
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "portal-margin-call")


def test_positions_and_the_ratio_chart(page: Page, sign_in, owner, facility):
    from financing.models import RatioSnapshot

    RatioSnapshot.objects.filter(facility=facility).update(
        taken_at=timezone.now() - datetime.timedelta(days=20)
    )
    for days, ratio in [(15, "0.78"), (10, "0.92"), (5, "0.81")]:
        RatioSnapshot.objects.create(
            facility=facility,
            taken_at=timezone.now() - datetime.timedelta(days=days),
            market_value=Decimal("1180000"),
            margin_value=Decimal("592000"),
            debt=Decimal("414400"),
            margin_ratio=Decimal(ratio),
            status="ok",
        )
    sign_in(owner)
    page.goto(f"/portal/facilities/{facility.pk}/positions/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Positions")
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "portal-positions")
    page.get_by_role("link", name="History").click()
    expect(page.locator("canvas[data-chart-drawn=true]")).to_have_count(1)
    expect(page.get_by_role("cell", name="Drawdown", exact=True)).to_be_visible()
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "portal-history")


def test_a_drawdown_is_refused_in_words_then_a_smaller_one_goes_through(page: Page, sign_in, owner, facility):
    sign_in(owner)
    page.goto(f"/portal/facilities/{facility.pk}/actions/")
    page.get_by_role("link", name="Draw down").click()
    page.get_by_label("Amount (HK$)").fill("100000")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert")).to_contain_text("above the max advance of 85.00%")
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "portal-drawdown-refused")
    page.get_by_label("Amount (HK$)").fill("50000")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("ratio-after")).to_have_text("Within limits — 78.4%")  # 464,400 / 592,000
    docs_screenshot(page, "portal-drawdown-preview")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Done: Draw down.")).to_be_visible()
    expect(page.get_by_test_id("ratio-words")).to_have_text("Within limits — 78.4%")


def test_the_portal_in_traditional_chinese_on_a_phone(page: Page, sign_in, owner, facility):
    sign_in(owner)
    page.set_viewport_size(PHONE)
    page.goto(f"/portal/facilities/{facility.pk}/")
    page.get_by_role("button", name="繁體中文").click()
    expect(page.get_by_test_id("ratio-words")).to_have_text("在限額之內 — 70.0%")
    expect(page.get_by_role("heading", name="觸發價格")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "portal-overview-zh-hant-phone")
    for path in ["positions/", "history/", "actions/", "actions/draw-down/"]:
        page.goto(f"/portal/facilities/{facility.pk}/{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
        assert_no_serious_accessibility_violations(page)


def test_a_statement_is_read_and_its_pdf_downloaded_and_the_inbox_is_read(
    page: Page, sign_in, owner, facility
):
    sign_in(owner)
    page.goto(f"/portal/facilities/{facility.pk}/statements/")
    page.get_by_role("link", name=timezone.localdate().strftime("%Y-%m")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Statement for")
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "portal-statement")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    path = download.value.path()
    with open(path, "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
    price("BTC", "45000")  # LV 140,400 + 262,850 (Tencent capped): 102.8%, a margin call for the inbox
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    page.goto("/portal/notifications/")
    expect(page.get_by_text("New", exact=True).first).to_be_visible()
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "portal-notifications")
    page.get_by_role("button", name="Mark all read").click()
    expect(page.get_by_text("New", exact=True)).to_have_count(0)
