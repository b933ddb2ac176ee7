"""The staff console in Chromium: a risk officer watches a BTC shock move facilities into the at-risk list
and a sale appear, approves the sale, engages the kill switch and reads the sale explained; a credit officer
approves another's request from the queue and never sees their own; compliance reads every page and finds no
action."""

import re
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts import roles
from accounts.audit import SYSTEM
from accounts.services import credit_limit_change_request
from collateral.models import CurrentPrice, PriceQuote, QuoteStatus
from collateral.services import price_record
from fake_exchange import FAKE_CREDENTIALS
from fake_exchange.pytest_plugin import fake_bitstamp  # noqa: F401  (fixture)
from financing.enums import ForcedSaleStatus
from financing.lending.policies import margin_policy_save
from financing.lending.services import drawdown_create
from financing.liquidation.forced_sales import forced_sale_step
from financing.models import ForcedSale, MarginPolicy
from financing.monitoring.cycle import monitoring_cycle_run
from tests.accounts.factories import ClientFactory, CreditProfileFactory, StaffFactory
from tests.browser.harness import assert_no_serious_accessibility_violations, docs_screenshot
from tests.collateral.factories import asset, price, standard_market
from tests.financing.factories import facility_with_pool

LIVE = 9000  # ms: the lists poll every 5 s


@pytest.fixture
def venue(fake_bitstamp, settings):  # noqa: F811
    settings.FORCED_SALE_VENUE = {
        "name": "fake-bitstamp",
        "exchange": "bitstamp",
        "base_url": fake_bitstamp.base_url,
        "timeout_ms": 800,
        "order_type": "limit",
        "markets": {"BTC": "BTC/USD", "ETH": "ETH/USD"},
        **FAKE_CREDENTIALS,
    }
    settings.FORCED_SALE_REPRICE_SECONDS = 3600
    fake_bitstamp.set_price("BTC/USD", "70000")
    return fake_bitstamp


@pytest.fixture
def book(transactional_db):
    """Drawn at BTC US$100,000 (one BTC: HK$312,000 of margin value): ``geared`` 1 BTC at 85% under a policy
    that holds forced sales for approval; ``steady`` 10 BTC at 8%; ``ether`` 100 ETH at 85%."""
    standard_market()
    held = MarginPolicy(name="Sales approved by staff", requires_sale_approval=True)
    margin_policy_save(policy=held, actor=SYSTEM)
    geared = facility_with_pool(holdings={"BTC": "1"}, client=ClientFactory(name="Geared Ltd"), policy=held)
    steady = facility_with_pool(holdings={"BTC": "10"}, client=ClientFactory(name="Steady Ltd"))
    ether = facility_with_pool(holdings={"ETH": "100"}, client=ClientFactory(name="Ether Ltd"))
    drawdown_create(facility=geared, amount="265200.00", actor=SYSTEM)
    drawdown_create(facility=steady, amount="250000.00", actor=SYSTEM)
    drawdown_create(facility=ether, amount="928200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    return geared, steady, ether


def test_a_risk_officer_watches_a_shock_approves_the_sale_and_engages_the_kill_switch(
    page: Page, sign_in, book, venue
):
    geared, steady, _ = book
    sign_in(StaffFactory(username="rita", role=roles.RISK_OFFICER))
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Firm overview")
    expect(page.locator("[data-figure=kill-switch]")).to_have_text("Off: forced sales run.")
    docs_screenshot(page, "console-overview")

    page.goto(reverse("console:at_risk"))
    row = page.locator(f"tr[data-facility={geared.reference}]")
    expect(row).to_have_attribute("data-status", "ok")  # near its warning level: listed, within limits
    expect(page.locator(f"tr[data-facility={steady.reference}]")).to_have_count(0)

    price("BTC", "70000")  # one BTC: HK$218,400 of margin value; 265,200 / 218,400 = 121.4%
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    expect(row).to_have_attribute("data-status", "forced_sale", timeout=LIVE)  # no reload
    expect(row).to_contain_text("Forced sale")
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "console-at-risk")

    sale = ForcedSale.objects.get(facility=geared)
    assert forced_sale_step(sale_id=sale.pk) == ForcedSaleStatus.AWAITING_APPROVAL  # what the worker does
    page.goto(reverse("console:home"))
    expect(page.locator("[data-figure=sales-running]")).to_contain_text("Running: 1.", timeout=LIVE)

    page.goto(reverse("console:forced_sales"))
    page.get_by_role("button", name=f"Approve sale #{sale.pk}").click()
    expect(page.locator(".messages")).to_contain_text(f"Forced sale #{sale.pk} approved")
    sale.refresh_from_db()
    assert sale.approved_by.username == "rita"
    assert sale.status != ForcedSaleStatus.AWAITING_APPROVAL

    page.get_by_label("Why engage it").fill("Venue prices look wrong")
    page.get_by_role("button", name="Engage the kill switch").click()
    expect(page.locator("[data-figure=kill-switch]")).to_contain_text("Engaged by rita")
    expect(page.get_by_role("button", name="Ask to lift the kill switch")).to_be_visible()
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "console-forced-sales")

    page.goto(reverse("console:facility", args=[geared.pk]))
    expect(page.locator("canvas[data-chart=ratio-chart-data]")).to_have_attribute("data-chart-drawn", "true")
    expect(page.locator("li[data-kind=sale]").first).to_be_visible()
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "console-facility")

    # The sale explained, from its stored records: the plan as first made, not the one made again as it filled.
    page.goto(reverse("console:forced_sales"))
    page.locator(f"section[data-sale='{sale.pk}']").get_by_role("link", name="The sale explained").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Forced sale #{sale.pk} on {geared.reference}, explained"
    )
    expect(page.locator("[data-figure=ratio-at-request]")).to_have_text("121.43%")
    expect(page.locator("#first-plan")).to_contain_text("0.22246457")
    expect(page.locator("#first-plan")).to_contain_text("HK$121,465.66")
    expect(page.locator("#fills")).to_contain_text(f"FS{sale.pk}-1")
    expect(page.get_by_role("link", name="Download as PDF")).to_be_visible()
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "console-sale-explained")


def test_a_credit_officer_approves_another_ones_request_and_never_their_own(
    page: Page, sign_in, transactional_db
):
    asker = StaffFactory(username="carl", role=roles.CREDIT_OFFICER)
    decider = StaffFactory(username="cora", role=roles.CREDIT_OFFICER)
    theirs = credit_limit_change_request(
        profile=CreditProfileFactory(client=ClientFactory(name="Harbour Ltd")),
        credit_limit="8000000.00",
        actor=asker,
        reason="Annual review",
    )
    own = credit_limit_change_request(
        profile=CreditProfileFactory(client=ClientFactory(name="Kowloon Ltd")),
        credit_limit="9000000.00",
        actor=decider,
        reason="New business",
    )
    sign_in(decider)
    page.goto(reverse("console:queues"))
    expect(page.locator(f"[data-approval='{own.pk}']")).to_have_count(0)
    expect(page.locator(f"[data-approval='{theirs.pk}']")).to_contain_text("Harbour Ltd")
    assert_no_serious_accessibility_violations(page)
    docs_screenshot(page, "console-queues")
    page.get_by_label("Note").fill("Financials checked")
    page.get_by_role("button", name=f"Approve #{theirs.pk}").click()
    expect(page.locator(".messages")).to_contain_text(f"Request #{theirs.pk} approved.")
    expect(page.locator(f"[data-approval='{theirs.pk}']")).to_have_count(0)
    theirs.refresh_from_db()
    assert (theirs.status, theirs.decided_by, theirs.decision_note) == (
        "approved",
        decider,
        "Financials checked",
    )
    response = page.request.post(reverse("console:approval_approve", args=[own.pk]))
    assert response.status == 403  # no button, and no way round it
    own.refresh_from_db()
    assert own.status == "pending"


def test_compliance_reads_every_page_and_finds_no_action(page: Page, sign_in, book, console_errors):
    geared, _, _ = book
    price("BTC", "70000")
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    sale = ForcedSale.objects.get(facility=geared)
    ForcedSale.objects.filter(pk=sale.pk).update(status=ForcedSaleStatus.AWAITING_APPROVAL)
    credit_limit_change_request(
        profile=CreditProfileFactory(client=ClientFactory(name="Harbour Ltd")),
        credit_limit="8000000.00",
        actor=StaffFactory(username="carl", role=roles.CREDIT_OFFICER),
    )
    sign_in(StaffFactory(username="connie", role=roles.COMPLIANCE))
    for url in [
        reverse("console:home"),
        reverse("console:at_risk"),
        reverse("console:facility", args=[geared.pk]),
        reverse("console:queues"),
        reverse("console:prices"),
        reverse("console:concentration"),
        reverse("console:forced_sales"),  # last: the sale is looked for on it below
    ]:
        page.goto(url)
        expect(page.locator("main h1")).to_be_visible()
        expect(page.locator("[data-action]")).to_have_count(0)
        assert_no_serious_accessibility_violations(page)
    expect(page.locator(f"[data-sale='{sale.pk}']")).to_be_visible()
    assert console_errors == []


def test_a_risk_officer_sees_a_pushed_price_arrive_and_confirms_it(page: Page, sign_in, book):
    pusher = StaffFactory(username="paul", role=roles.RISK_OFFICER)
    median = CurrentPrice.objects.get(asset=asset("BTC")).price
    for venue, value, status in [
        ("bitstamp-1", "100020", QuoteStatus.ACCEPTED),
        ("bitstamp-2", "99980", QuoteStatus.ACCEPTED),
        ("kraken-1", "112000", QuoteStatus.OUTLIER),
    ]:
        now = timezone.now()
        PriceQuote.objects.create(
            refresh_id=uuid.uuid4(), venue=venue, asset=asset("BTC"), market="BTC/USD", price=Decimal(value),
            currency="USD", quoted_at=now, received_at=now, status=status,
            chosen_price=median if status == QuoteStatus.ACCEPTED else None,
        )  # fmt: skip
    sign_in(StaffFactory(username="rita", role=roles.RISK_OFFICER))
    page.goto(reverse("console:prices"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Prices")
    expect(page.locator("tr[data-asset=BTC] td[data-venue=kraken-1] [data-used=no]")).to_contain_text(
        "Outlier"
    )
    expect(page.locator("tr[data-asset=BTC] [data-figure=median]")).to_contain_text("100000 USD")
    expect(page.locator("tr[data-security='0700.HK']")).to_contain_text("400 HKD")
    expect(page.locator("[data-held-price]")).to_have_count(0)

    held = price_record(asset=asset("0700.HK"), price="600", source="desk", actor=pusher)  # +50%: held
    row = page.locator(f"[data-held-price='{held.pk}']")
    expect(row).to_contain_text("0700.HK 600", timeout=LIVE)  # no reload
    docs_screenshot(page, "console-prices")
    assert_no_serious_accessibility_violations(page)

    row.get_by_label("Note").fill("Checked against HKEX")
    row.get_by_role("button", name=f"Confirm #{held.pk}").click()
    expect(page.locator("[data-held-price]")).to_have_count(0)
    expect(page.locator("tr[data-security='0700.HK']")).to_contain_text("600 HKD")
    held.refresh_from_db()
    assert held.decided_by.username == "rita"


def test_staff_read_collateral_and_loans_against_their_limits(page: Page, sign_in, book):
    _, steady, _ = book
    holder = facility_with_pool(
        holdings={"0700.HK": "2000", "0005.HK": "3000"}, client=ClientFactory(name="Harbour Ltd")
    )
    drawdown_create(facility=holder, amount="300000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    sign_in(StaffFactory(username="connie", role=roles.COMPLIANCE))
    page.goto(reverse("console:concentration"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Concentration and exposure")
    expect(page.locator("#by-class tr[data-class=crypto]")).to_be_visible()
    expect(page.locator("#by-class tr[data-class=security]")).to_be_visible()
    expect(page.locator("#by-asset tr[data-asset=BTC] td").nth(1)).to_have_text(
        re.compile(r"^11(\.0+)?$")
    )  # 1 + 10 BTC
    expect(page.locator("#securities tr[data-security='0700.HK']")).to_be_visible()
    expect(page.locator("#clients tbody tr").first).to_contain_text("Ether Ltd")  # the largest loan first
    expect(page.locator(f"#clients tr[data-facility={steady.reference}]")).to_contain_text("HK$250,000.00")
    expect(page.locator("[data-action]")).to_have_count(0)
    docs_screenshot(page, "console-concentration")
    assert_no_serious_accessibility_violations(page)
