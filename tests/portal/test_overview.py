"""The overview, the what-if and the margin-call banner, over Django's test client."""

from decimal import Decimal

import pytest
from django.urls import reverse

from financing.models import MarginCall
from tests.helpers import login_as
from tests.portal.conftest import btc_at
from tests.web.factories import ClientUserFactory, SignInUserFactory, StaffFactory

pytestmark = pytest.mark.django_db


def page(client, name, *args, **query):
    response = client.get(reverse(name, args=args), query)
    return response, response.content.decode()


def test_a_client_with_one_facility_lands_on_its_overview(signed_in, facility):
    response = signed_in.get("/portal/")
    assert response["Location"] == reverse("portal:overview", args=[facility.pk])
    assert signed_in.get("/")["Location"] == "/portal/"


def test_the_overview_shows_the_ratio_in_words_the_figures_and_the_trigger_prices(signed_in, facility):
    response, html = page(signed_in, "portal:overview", facility.pk)
    assert response.status_code == 200
    assert "Within limits — 85.0%" in html
    assert "HK$312,000.00" in html  # margin value
    assert "HK$780,000.00" in html  # market value
    assert "HK$265,200.00" in html  # principal and debt
    assert "HK$0.00" in html  # available to draw: at max advance
    assert "6.500%" in html  # the fixed rate
    assert "US$94,444.44" in html
    assert "US$84,999.99" in html
    assert "US$70,833.33" in html
    assert "US$100,000.00" in html
    assert f'hx-get="{reverse("portal:overview_figures", args=[facility.pk])}"' in html
    assert 'hx-trigger="every 5s"' in html
    assert "Standing top-up instruction" in html
    assert "Off" in html


def test_the_live_part_follows_the_prices(signed_in, facility):
    btc_at("94000")  # LV 293,280: 90.43%
    response, html = page(signed_in, "portal:overview_figures", facility.pk)
    assert response.status_code == 200
    assert "Warning — 90.4%" in html
    assert "<html" not in html  # a fragment only


def test_the_what_if_values_the_pool_as_the_sweep_would(signed_in, facility):
    response, html = page(signed_in, "portal:what_if", facility.pk, btc="-30", eth="0", securities="0")
    assert response.status_code == 200
    assert "Forced sale — 121.4%" in html  # 265,200 / (70,000 × 3.12)
    assert "HK$79,560.00" in html  # the repayment back to 85%
    response, html = page(signed_in, "portal:what_if", facility.pk, btc="10")
    assert "Within limits — 77.3%" in html


@pytest.mark.parametrize("query", [{"btc": "-61"}, {"eth": "21"}, {"securities": "abc"}, {"btc": "NaN"}])
def test_a_what_if_out_of_range_is_refused_in_words(signed_in, facility, query):
    response, html = page(signed_in, "portal:what_if", facility.pk, **query)
    assert response.status_code == 400
    assert "errorlist" in html


def test_an_open_call_shows_on_every_page_with_its_cure_and_countdown(signed_in, facility):
    _, html = page(signed_in, "portal:banner")
    assert "Margin call" not in html
    btc_at("80000")  # LV 249,600: 106.25%
    call = MarginCall.objects.get()
    for name, args in [("portal:banner", ()), ("portal:overview", (facility.pk,))]:
        _, html = page(signed_in, name, *args)
        assert f"Margin call on {facility.reference}" in html
        assert "Repay HK$53,040.00, or add HK$62,400.00 of cash" in html
        assert f'data-deadline="{call.deadline.isoformat()}"' in html
        assert "HKT" in html
    _, html = page(signed_in, "portal:overview", facility.pk)
    assert 'hx-get="/portal/alerts/"' in html


def test_staff_are_sent_to_their_own_pages(client, facility, settings):
    settings.WEB_STAFF_HOME = "admin:index"
    login_as(client, StaffFactory())
    for url in ["/portal/", reverse("portal:overview", args=[facility.pk]), "/portal/alerts/"]:
        assert client.get(url)["Location"] == reverse("admin:index")


def test_someone_signed_out_is_sent_to_sign_in_and_a_user_without_a_client_is_refused(client, facility):
    url = reverse("portal:overview", args=[facility.pk])
    assert client.get(url)["Location"] == f"/sign-in/?next={url}"
    login_as(client, SignInUserFactory())
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("name", ["portal:overview", "portal:overview_figures", "portal:what_if"])
def test_another_client_s_facility_does_not_exist_for_them(client, facility, stranger, name):
    login_as(client, stranger)
    assert client.get(reverse(name, args=[facility.pk])).status_code == 404


def test_another_client_s_call_is_not_in_their_banner(client, facility, stranger):
    btc_at("80000")
    login_as(client, stranger)
    _, html = page(client, "portal:banner")
    assert facility.reference not in html


def test_a_client_without_a_facility_is_told_so(client, market):
    login_as(client, ClientUserFactory())
    response = client.get("/portal/")
    assert response.status_code == 200
    assert "You have no open facility" in response.content.decode()


def test_the_portal_pages_answer_only_safe_methods(signed_in, facility):
    assert signed_in.post(reverse("portal:overview", args=[facility.pk])).status_code == 405


def test_trigger_prices_use_the_sweep_s_numbers(signed_in, facility):
    """Sanity: the figure the page shows is the one the pure function gives."""
    from portal.selectors import facility_overview

    row = facility_overview(facility).triggers[0]
    assert (row.symbol, row.warning.price) == ("BTC", Decimal("94444.44"))


def test_the_overview_reads_the_facility_in_few_queries(signed_in, facility, django_assert_max_num_queries):
    """Session, user, second factor, facility, balances, assets with prices, FX, policy, instruction, unread
    count, open calls and sales: one query each, however many positions the pool holds."""
    with django_assert_max_num_queries(12):
        response, _ = page(signed_in, "portal:overview", facility.pk)
    assert response.status_code == 200
    with django_assert_max_num_queries(9):
        response, _ = page(signed_in, "portal:overview_figures", facility.pk)
    assert response.status_code == 200
