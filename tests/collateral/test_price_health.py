"""The price-health page and the read-only quote list in the admin."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from accounts.audit import SYSTEM
from collateral.models import PriceQuote
from collateral.oracle import crypto_prices_refresh
from tests.accounts.factories import StaffFactory, UserFactory
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

HEALTH = "admin:collateral_pricequote_health"
ROLES = ["Credit officer", "Risk officer", "Operations", "Compliance", "Administrator"]


def table(body: str, table_id: str) -> list[list[str]]:
    """The cells of a table on the page, tags stripped, for exact comparisons."""
    section = body.split(f'<table id="{table_id}">', 1)[1].split("</table>", 1)[0]
    rows = section.split("<tbody>", 1)[1].split("</tr>")
    cells = []
    for row in rows:
        found = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        if found:
            cells.append([html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in found])
    return cells


@pytest.mark.parametrize("role", ROLES)
def test_every_staff_role_reads_the_price_health_and_the_quotes(client, oracle, role):
    crypto_prices_refresh(actor=SYSTEM)
    login_as(client, StaffFactory(role=role))

    assert client.get(reverse(HEALTH)).status_code == 200
    assert client.get(reverse("admin:collateral_pricequote_changelist")).status_code == 200
    quote = PriceQuote.objects.first()
    assert client.get(reverse("admin:collateral_pricequote_change", args=[quote.pk])).status_code == 200


def test_the_page_shows_each_venue_and_asset_and_why_a_price_is_stale(client, oracle):
    _bitstamp_1, bitstamp_2, kraken_1 = oracle
    kraken_1.fail("ticker", "http_500")
    bitstamp_2.set_price("BTC/USD", "98100")
    bitstamp_2.set_price("ETH/USD", "340")
    crypto_prices_refresh(actor=SYSTEM)
    login_as(client, StaffFactory(role="Compliance"))

    body = client.get(reverse(HEALTH)).content.decode()

    venues = {(row[0], row[3]): row for row in table(body, "venue-quotes")}
    assert set(venues) == {(v, a) for v in ("bitstamp-1", "bitstamp-2", "kraken-1") for a in ("BTC", "ETH")}
    assert venues[("bitstamp-2", "BTC")][:6] == ["bitstamp-2", "bitstamp", bitstamp_2.base_url, "BTC", "BTC/USD",
                                                 "98100 USD"]  # fmt: skip
    assert venues[("bitstamp-2", "BTC")][8:10] == ["Accepted", ""]
    assert venues[("bitstamp-2", "ETH")][8:10] == [
        "Outlier (outside the band around the median)",
        "340 is 81.82% below the median 1870 of the fresh quotes; the band is 5%",
    ]
    kraken_btc = venues[("kraken-1", "BTC")]
    assert kraken_btc[5:7] == ["—", "—"]
    assert kraken_btc[8] == "Error (no answer)"
    assert kraken_btc[9].startswith("ExchangeNotAvailable: kraken GET http://127.0.0.1:")

    assets = {row[0]: row for row in table(body, "asset-prices")}
    assert assets["BTC"][2:4] == ["98050 USD", "oracle"]
    assert assets["BTC"][7] == "fresh"
    assert assets["ETH"][2:4] == ["4000 USD", "test"]  # the last good price, kept
    assert assets["ETH"][7] == (
        "stale: the price of ETH is marked stale: none of the 3 venues gave a fresh quote within 5% of the "
        "median; quorum is 2 (bitstamp-1: outlier (+81.82%); bitstamp-2: outlier (-81.82%); kraken-1: error "
        "(ExchangeNotAvailable))"
    )
    assert assets["0700.HK"][2:4] == ["400 HKD", "test"]
    assert assets["0700.HK"][6:8] == ["", "fresh"]
    assert [row[:2] + row[5:] for row in table(body, "fx-rates")] == [["USD/HKD", "7.8", "fresh"]]


def test_a_venue_never_asked_shows_no_quote_yet(client, oracle):
    login_as(client, StaffFactory(role="Operations"))
    body = client.get(reverse(HEALTH)).content.decode()
    rows = table(body, "venue-quotes")
    assert len(rows) == 6
    assert all(row[5] == "no quote yet" for row in rows)


def test_a_misconfigured_oracle_is_shown_not_a_server_error(client, market, settings):
    settings.PRICE_VENUES = [{"name": "x", "exchange": "binance", "markets": {"BTC": "BTC/USD"}}]
    login_as(client, StaffFactory(role="Risk officer"))
    body = client.get(reverse(HEALTH)).content.decode()
    assert (
        "The oracle is misconfigured: PRICE_VENUES item 1 (x): exchange must be one of bitstamp, kraken"
        in (html.unescape(body))
    )


def test_price_quotes_cannot_be_added_changed_or_deleted(client, oracle):
    crypto_prices_refresh(actor=SYSTEM)
    quote = PriceQuote.objects.first()
    login_as(client, StaffFactory(role="Risk officer"))  # holds collateral.add_price*, quotes included

    assert client.get(reverse("admin:collateral_pricequote_add")).status_code == 403
    with writes_nothing():
        response = client.post(
            reverse("admin:collateral_pricequote_change", args=[quote.pk]),
            {"status": "accepted", "error": ""},
        )
        assert response.status_code == 403
        assert client.post(reverse("admin:collateral_pricequote_delete", args=[quote.pk])).status_code == 403
    changelist = client.get(reverse("admin:collateral_pricequote_changelist")).content.decode()
    assert reverse(HEALTH) in changelist


def test_the_quotes_of_one_refresh_can_be_listed(client, oracle):
    first = crypto_prices_refresh(actor=SYSTEM)
    crypto_prices_refresh(actor=SYSTEM)
    login_as(client, StaffFactory(role="Compliance"))

    response = client.get(reverse("admin:collateral_pricequote_changelist"), {"refresh_id": first.refresh_id})

    assert response.context["cl"].result_count == 6
    assert {q.refresh_id for q in response.context["cl"].result_list} == {first.refresh_id}


def test_the_price_health_page_is_for_staff_only(client, market):
    login_as(client, UserFactory())
    response = client.get(reverse(HEALTH))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
