"""The firm overview: the figures it shows, read from the margin states and the records, for every role."""

from decimal import Decimal

import pytest
from django.urls import reverse

from console.selectors import firm_overview
from financing.enums import MarginStatus
from financing.liquidation.kill_switch import kill_switch_engage
from tests.helpers import login_as
from tests.web.factories import ClientUserFactory

pytestmark = pytest.mark.django_db

PAGES = ["console:home", "console:overview_live", "console:at_risk", "console:at_risk_rows"]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ["credit", "risk", "operations", "compliance", "administrator"])
def test_every_role_reads_every_page(as_role, role, page, market):
    response = as_role(role).get(reverse(page))
    assert response.status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_nobody_else_does(client, page):
    response = client.get(reverse(page))
    assert response.status_code == 302
    assert response["Location"].startswith("/sign-in/")
    login_as(client, ClientUserFactory())
    assert client.get(reverse(page)).status_code == 403


def test_staff_home_is_the_overview(as_role):
    assert as_role("compliance").get("/")["Location"] == reverse("console:home")


def test_the_overview_figures(book, staff):
    kill_switch_engage(actor=staff.risk, reason="Venue outage")
    overview = firm_overview()
    drawn = (
        Decimal("265000.00")
        + Decimal("230000.00")
        + Decimal("210000.00")
        + Decimal("928000.00")
        + Decimal("250000.00")
    )
    assert overview.total_lending == drawn
    assert overview.firm_cap == Decimal("1000000000.00")
    assert overview.firm_cap_used == drawn / Decimal("1000000000.00")
    assert overview.largest_client.name == "Ether Ltd"
    assert overview.largest_client.loan == Decimal("928000.00")
    assert overview.largest_client_cap_used == Decimal("928000.00") / Decimal("50000000.00")
    counts = {row.status: row.count for row in overview.status_counts}
    assert counts == {
        MarginStatus.NO_DEBT: 0,
        MarginStatus.OK: 2,
        MarginStatus.WARNING: 2,
        MarginStatus.MARGIN_CALL: 1,
        MarginStatus.FORCED_SALE: 0,
    }
    assert overview.facilities_open == 5
    assert overview.open_calls_count == 1
    (call,) = overview.open_calls
    assert call.facility_reference == book.called.reference
    assert call.repayment_due > 0
    assert overview.open_calls_due == call.repayment_due
    assert overview.sales_running_count == 0
    assert overview.shortfall_count == 0
    assert overview.kill_switch.engaged
    assert overview.last_sweep.symbols == ["BTC", "ETH"]
    assert overview.stale_count == 0


def test_the_overview_page_shows_them_and_polls(book, as_role):
    page = as_role("compliance").get(reverse("console:home")).content.decode()
    assert "HK$1,883,000.00" in page  # total lending
    assert "Ether Ltd" in page
    assert book.called.reference in page
    assert 'hx-get="/console/overview/live/"' in page
    assert 'hx-trigger="every 5s"' in page


def test_a_stale_price_shows_red(book, as_role, settings):
    settings.PRICE_STALENESS_SECONDS = 0
    overview = firm_overview()
    stale = {row.symbol for row in overview.prices if not row.fresh}
    assert {"BTC", "ETH"} <= stale
    page = as_role("risk").get(reverse("console:overview_live")).content.decode()
    assert '<span class="status status--danger">BTC stale</span>' in page


def test_kill_switch_off_reads_off(market, as_role):
    assert "Off: forced sales run." in as_role("risk").get(reverse("console:home")).content.decode()
