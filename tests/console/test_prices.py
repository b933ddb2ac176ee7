"""The prices page: each venue's latest quote with whether the median used it, the median and its band, the
securities prices and FX rates in use, and the held prices and FX rates a second person confirms or rejects
(never the one who pushed it; compliance sees no button and is refused)."""

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from collateral import services
from collateral.enums import PriceStatus
from collateral.models import CurrentPrice, FxRate, Price, PriceQuote, QuoteStatus
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import asset
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

ROLES = ["credit", "risk", "operations", "compliance", "administrator"]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_prices(as_role, role, market):
    response = as_role(role).get(reverse("console:prices"))
    assert response.status_code == 200
    assert b"0700.HK" in response.content
    assert b"USD/HKD" in response.content


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_polled_prices(as_role, role, market):
    response = as_role(role).get(reverse("console:prices_live"))
    assert response.status_code == 200
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="prices"')
    assert "0700.HK" in content
    assert "price-chart-data" not in content  # the chart is drawn once, not polled


@pytest.mark.parametrize("page", ["console:prices", "console:prices_live"])
def test_nobody_else_does(client, page):
    assert client.get(reverse(page)).status_code == 302


def test_the_page_polls_its_lists_and_keeps_what_is_typed(as_role, held_price):
    content = as_role("risk").get(reverse("console:prices")).content.decode()
    assert f'hx-get="{reverse("console:prices_live")}"' in content
    assert 'hx-trigger="every 5s"' in content
    assert f'id="price-note-{held_price.pk}" name="note" maxlength="1000"' in content
    note = content[content.index(f'id="price-note-{held_price.pk}"') :]
    assert 'hx-preserve="true"' in note[: note.index(">")]
    polled = as_role("risk").get(reverse("console:prices_live")).content.decode()
    assert f'data-held-price="{held_price.pk}"' in polled


def quote(venue: str, value: str | None, status: str, *, price=None) -> PriceQuote:
    now = timezone.now()
    return PriceQuote.objects.create(
        refresh_id=uuid.uuid4(),
        venue=venue,
        asset=asset("BTC"),
        market="BTC/USD",
        price=Decimal(value) if value else None,
        currency="USD",
        quoted_at=now,
        received_at=now,
        status=status,
        error="" if value else "timed out",
        chosen_price=price,
    )


def test_the_page_shows_each_venues_latest_quote_and_the_median(as_role, market):
    median = CurrentPrice.objects.get(asset=asset("BTC")).price
    quote("alpha", "90000", QuoteStatus.ACCEPTED)  # older: replaced by the next one
    quote("alpha", "100010", QuoteStatus.ACCEPTED, price=median)
    quote("beta", "130000", QuoteStatus.OUTLIER)
    quote("gamma", None, QuoteStatus.ERROR)
    content = as_role("risk").get(reverse("console:prices")).content.decode()
    row = content[content.index('data-asset="BTC"') :]
    row = row[: row.index("</tr>")]
    assert "100010 USD" in row
    assert "90000 USD" not in row
    alpha = row[row.index('data-venue="alpha"') : row.index('data-venue="beta"')]
    beta = row[row.index('data-venue="beta"') : row.index('data-venue="gamma"')]
    assert 'data-used="yes"' in alpha
    assert 'data-used="no"' in beta
    assert "Outlier" in beta
    assert "100000 USD" in row  # the median in use
    assert "95000.00 – 105000.00" in row  # the default 5% band around it
    chart = content[content.index('id="price-chart-data"') :]
    assert '"label": "BTC"' in chart[: chart.index("</script>")]


@pytest.fixture
def pusher(db):
    return StaffFactory(username="pusher", role=roles.RISK_OFFICER)


@pytest.fixture
def held_price(market, pusher):
    held = services.price_record(asset=asset("0700.HK"), price="600", source="feed", actor=pusher)
    assert held.status == PriceStatus.UNCONFIRMED
    return held


@pytest.fixture
def held_rate(market, pusher):
    held = services.fx_rate_record(currency="USD", rate="7.95", source="feed", actor=pusher)
    assert held.status == PriceStatus.UNCONFIRMED
    return held


def test_the_page_lists_held_prices_and_rates_with_buttons_for_a_second_risk_officer(
    as_role, held_price, held_rate
):
    content = as_role("risk").get(reverse("console:prices")).content.decode()
    assert f'data-held-price="{held_price.pk}"' in content
    assert "0700.HK 600" in content
    assert f'data-held-fx-rate="{held_rate.pk}"' in content
    assert "USD/HKD 7.95" in content
    assert reverse("console:price_confirm", args=[held_price.pk]) in content
    assert reverse("console:fx_rate_reject", args=[held_rate.pk]) in content


@pytest.mark.parametrize("who", ["pusher", "compliance"])
def test_the_pusher_and_compliance_see_no_button(as_role, client, pusher, held_price, held_rate, who):
    if who == "pusher":
        login_as(client, pusher)
        content = client.get(reverse("console:prices")).content.decode()
    else:
        content = as_role("compliance").get(reverse("console:prices")).content.decode()
    assert f'data-held-price="{held_price.pk}"' in content
    assert 'data-action="confirm-price"' not in content
    assert 'data-action="reject-fx-rate"' not in content


def test_a_second_risk_officer_confirms_a_held_price_and_rejects_a_held_rate(
    as_role, staff, held_price, held_rate
):
    risk = as_role("risk")
    response = risk.post(reverse("console:price_confirm", args=[held_price.pk]), {"note": "checked HKEX"})
    assert response.status_code == 302
    held_price.refresh_from_db()
    assert held_price.status == PriceStatus.CONFIRMED
    assert held_price.decided_by == staff.risk
    assert CurrentPrice.objects.get(asset=asset("0700.HK")).price == held_price
    risk.post(reverse("console:fx_rate_reject", args=[held_rate.pk]))
    held_rate.refresh_from_db()
    assert held_rate.status == PriceStatus.REJECTED
    assert held_rate.decided_by == staff.risk


@pytest.mark.parametrize("who", ["pusher", "compliance", "operations", "credit"])
@pytest.mark.parametrize(
    "action",
    ["console:price_confirm", "console:price_reject", "console:fx_rate_confirm", "console:fx_rate_reject"],
)
def test_the_pusher_and_other_roles_are_refused_with_nothing_written(
    as_role, client, pusher, held_price, held_rate, who, action
):
    if who == "pusher":
        login_as(client, pusher)
        signed_in = client
    else:
        signed_in = as_role(who)
    pk = held_price.pk if action.startswith("console:price") else held_rate.pk
    with writes_nothing():
        assert signed_in.post(reverse(action, args=[pk])).status_code == 403
    assert Price.objects.get(pk=held_price.pk).status == PriceStatus.UNCONFIRMED
    assert FxRate.objects.get(pk=held_rate.pk).status == PriceStatus.UNCONFIRMED
