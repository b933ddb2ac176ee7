"""The concentration and exposure page: collateral by class and asset, the largest securities and clients by
loan against the per-client cap, checked against the positions of a small book; staff only."""

from decimal import Decimal

import pytest
from django.urls import reverse

from collateral.models import Asset
from console.selectors.concentration import concentration_page
from financing.models import MarginState
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as
from tests.web.factories import ClientUserFactory

pytestmark = pytest.mark.django_db

HKD_PER_USD = Decimal("7.8")
FOUR = Decimal("0.0001")


@pytest.fixture
def book_with_securities(book):
    """The console's book and one pool of securities without a loan: 500 Tencent at HK$400 and 1,000 HSBC
    at HK$100."""
    facility_with_pool(holdings={"0700.HK": "500", "0005.HK": "1000"})
    return book


def test_the_figures_match_the_positions(book_with_securities):
    page = concentration_page()
    btc_mv = 13 * Decimal("80000") * HKD_PER_USD  # 1 + 1 + 1 + 10 BTC
    eth_mv = 100 * Decimal("3700") * HKD_PER_USD
    tencent_mv, hsbc_mv = 500 * Decimal("400"), 1000 * Decimal("100")
    total = btc_mv + eth_mv + tencent_mv + hsbc_mv
    assert page.market_value == total

    assets = {row.symbol: row for row in page.assets}
    assert set(assets) == {"BTC", "ETH", "0700.HK", "0005.HK"}
    assert assets["BTC"].market_value == btc_mv
    assert assets["BTC"].margin_value == 13 * Decimal("249600")  # 40% of each BTC's value counts
    assert assets["ETH"].margin_value == 100 * Decimal("10101")
    assert assets["0700.HK"].market_value == tencent_mv
    assert assets["BTC"].share_of_market_value == (btc_mv / total).quantize(FOUR)
    assert assets["0700.HK"].limit == Decimal("0.50")

    classes = {row.kind: row for row in page.classes}
    assert classes["crypto"].market_value == btc_mv + eth_mv
    assert classes["security"].market_value == tencent_mv + hsbc_mv
    assert classes["security"].share_of_market_value == ((tencent_mv + hsbc_mv) / total).quantize(FOUR)
    assert sum(row.margin_value for row in page.classes) == page.margin_value

    assert [row.symbol for row in page.securities] == ["0700.HK", "0005.HK"]
    assert page.securities[0].share_of_market_value == (tencent_mv / total).quantize(FOUR)

    assert page.client_cap == Decimal("50000000.00")
    loans = [(row.client, row.loan) for row in page.clients if row.loan]
    assert loans == [
        ("Ether Ltd", Decimal("928000.00")),
        ("Called Ltd", Decimal("265000.00")),
        ("Safe Ltd", Decimal("250000.00")),
        ("Warned Ltd", Decimal("230000.00")),
        ("Near Ltd", Decimal("210000.00")),
    ]
    assert page.clients[0].share_of_cap == Decimal("0.0186")  # 928,000 / 50,000,000, to four places


def test_a_concentration_cut_counts_and_the_statement_agrees_with_the_calculations(book_with_securities):
    from console.selectors import concentration

    units = concentration.asset_units()
    by_statement = {row.symbol: row for row in concentration._by_asset_sql(units)}
    by_calculations = {row.symbol: row for row in concentration._by_asset_python(units)}
    assert by_statement == by_calculations
    tencent = Asset.objects.get(pk="0700.HK")  # 200,000 of a 300,000 pool: above its 50% limit
    assert by_statement["0700.HK"].margin_value == (150000 * (1 - tencent.haircut)).quantize(Decimal("0.01"))


def test_the_clients_are_the_sweeps_margin_states(book_with_securities):
    page = concentration_page()
    called = next(row for row in page.clients if row.client == "Called Ltd")
    state = MarginState.objects.get(facility__client__name="Called Ltd")
    assert (called.loan, called.margin_value, called.status) == (
        state.principal,
        state.margin_value,
        state.status,
    )
    assert called.status == "margin_call"


@pytest.mark.parametrize("role", ["credit", "risk", "operations", "compliance", "administrator"])
def test_every_role_reads_the_page(as_role, role, book_with_securities):
    response = as_role(role).get(reverse("console:concentration"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-security="0700.HK"' in body
    assert "HK$928,000.00" in body
    assert "HK$50,000,000.00" in body
    assert 'aria-current="page">Concentration<' in body
    assert "<form" not in body.split("<main", 1)[-1]  # no action on the page


def test_nobody_else_reads_it(client, market):
    url = reverse("console:concentration")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/sign-in/")
    login_as(client, ClientUserFactory())
    assert client.get(url).status_code == 403


def test_the_page_refuses_a_post(as_role, market):
    assert as_role("risk").post(reverse("console:concentration")).status_code == 405
