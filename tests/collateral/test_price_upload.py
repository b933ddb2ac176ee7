"""Securities prices and FX rates from a CSV file, through the admin as staff use it."""

from __future__ import annotations

import datetime
import hashlib
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from collateral.models import FxRate, Price
from collateral.selectors import current_prices, fx_to_hkd
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import asset
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

UPLOAD = "admin:collateral_price_upload"
HEADER = "symbol,price,currency,observed_at,source\n"


def upload(client, content: bytes | str, name: str = "prices.csv", follow: bool = False):
    data = content.encode() if isinstance(content, str) else content
    return client.post(
        reverse(UPLOAD), {"file": SimpleUploadedFile(name, data, content_type="text/csv")}, follow=follow
    )


def problems_listed(response) -> list[str]:
    body = response.content.decode()
    assert "The file was refused: nothing was recorded." in body
    listed = body.split('<ul class="errorlist" id="price-file-problems">', 1)[1].split("</ul>", 1)[0]
    return [item.split("</li>", 1)[0].strip() for item in listed.split("<li>")[1:]]


@pytest.fixture
def securities(db):
    """Tencent and HSBC without a price yet."""
    return {symbol: asset(symbol) for symbol in ("0700.HK", "0005.HK", "HKD", "USD")}


@pytest.mark.parametrize("role", ["Operations", "Risk officer"])
def test_a_good_file_records_every_price_and_rate_and_says_what(client, securities, role):
    login_as(client, StaffFactory(role=role))
    content = (
        HEADER
        + "0700.HK,412.20,HKD,2026-11-20T16:10:00+08:00,Bloomberg\n"
        + "0005.hk,101,,,\n"
        + "\n"
        + "USD/HKD,7.785,,2026-11-20T08:00:00Z,HKMA\n"
    )
    before = timezone.now()

    response = upload(client, content)

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:collateral_price_changelist")
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == (
        "Recorded 2 price(s) and 1 FX rate(s) from prices.csv: 0700.HK 412.20, 0005.HK 101, USD/HKD 7.785."
    )
    prices = current_prices()
    assert (prices["0700.HK"].price, prices["0700.HK"].source) == (Decimal("412.20"), "Bloomberg")
    assert prices["0700.HK"].observed_at == datetime.datetime(2026, 11, 20, 8, 10, tzinfo=datetime.UTC)
    assert (prices["0005.HK"].price, prices["0005.HK"].source) == (Decimal("101"), "file prices.csv")
    assert before <= prices["0005.HK"].observed_at <= timezone.now()
    rate = FxRate.objects.get()
    assert (rate.currency, rate.quote, rate.rate, rate.source) == ("USD", "HKD", Decimal("7.785"), "HKMA")
    assert fx_to_hkd()["USD"] == Decimal("7.785")
    event = AuditEvent.objects.get(action="price_file.recorded")
    assert event.after == {
        "file": "prices.csv",
        "sha256": hashlib.sha256(content.encode()).hexdigest(),
        "rows": 3,
        "prices": 2,
        "fx_rates": 1,
        "held": 0,
    }
    assert event.actor_label == response.wsgi_request.user.username
    assert AuditEvent.objects.filter(action="price.recorded", target_id="0700.HK").exists()


def test_a_file_saved_by_excel_with_a_byte_order_mark_and_crlf_lines_is_read(client, market):
    login_as(client, StaffFactory(role="Operations"))
    content = "\ufeffSymbol,Price,Currency,Observed_At,Source\r\n0700.HK,399.8,HKD,,\r\n".encode()

    response = upload(client, content)

    assert response.status_code == 302
    assert current_prices()["0700.HK"].price == Decimal("399.8")


def test_a_file_with_bad_lines_is_refused_whole_with_every_bad_line_listed(client, market):
    login_as(client, StaffFactory(role="Operations"))
    content = (
        HEADER
        + "0700.HK,412.20,HKD,,\n"  # good, but not recorded: the file is refused whole
        + "0005.HK,101,HKD\n"
        + "0005.HK,101,HKD,20/11/2026,\n"
        + "0005.HK,101,HKD,2026-11-20T16:10:00,\n"
        + "NOPE.HK,1,,,\n"
        + "0005.HK,-1,,,\n"
        + "BTC,90000,USD,,\n"
        + "0005.HK,12,USD,,\n"
        + "EUR/HKD,8.5,,,\n"
        + "0700.HK,400,,2099-01-01T00:00:00+08:00,\n"
        + "0700.HK,400,,,"
        + "x" * 101
        + "\n"
    )

    with writes_nothing():
        response = upload(client, content)

    assert response.status_code == 200
    assert problems_listed(response) == [
        "line 3 (0005.HK): 3 fields, but the header has 5",
        "line 4 (0005.HK): observed_at &#x27;20/11/2026&#x27; is not an ISO-8601 date and time "
        "(e.g. 2026-11-20T16:10:00+08:00)",
        "line 5 (0005.HK): observed_at 2026-11-20T16:10:00 has no time zone: add one, e.g. "
        "2026-11-20T16:10:00+08:00",
        "line 6 (NOPE.HK): there is no asset NOPE.HK",
        "line 7 (0005.HK): price: must be more than zero, not -1.",
        "line 8 (BTC): BTC is priced by the crypto oracle, not pushed",
        "line 9 (0005.HK): 0005.HK is priced in HKD, not USD",
        "line 10 (EUR/HKD): EUR/HKD is not an FX pair of HKD, USD, USDT",
        "line 11 (0700.HK): observed_at 2099-01-01T00:00:00+08:00 is in the future.",
        "line 12 (0700.HK): the source is longer than 100 characters",
    ]
    assert current_prices()["0700.HK"].price == Decimal("400")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "line 1: the file is empty: it needs the header symbol,price,currency,observed_at,source and "
              "one line per price"),
        (b"\n  \n", "line 1: the file is empty: it needs the header symbol,price,currency,observed_at,source "
                    "and one line per price"),
        (HEADER.encode(), "line 2: the file has a header but no prices"),
        (HEADER.encode() + "0700.HK,412,HKD,,Caf\u00e9\n".encode("latin-1"),
         "line 2: the file is not UTF-8 text (byte 0xe9): save it as CSV UTF-8"),
        (b"0700.HK,412,HKD,,\n", "line 1: the first line must be the header "
                                 "symbol,price,currency,observed_at,source (any order): missing symbol, price, "
                                 "currency, observed_at, source; unknown &#x27;0700.hk&#x27;, &#x27;412&#x27;, "
                                 "&#x27;hkd&#x27;, &#x27;&#x27;"),
        (b"symbol,price,price,currency,observed_at,source\n", "line 1: the first line must be the header "
         "symbol,price,currency,observed_at,source (any order): repeated price"),
        (b"symbol,price,ccy,observed_at,source\n0700.HK,412,HKD,,\n",
         "line 1: the first line must be the header symbol,price,currency,observed_at,source (any order): "
         "missing currency; unknown &#x27;ccy&#x27;"),
        (HEADER.encode() + b'0700.HK,"41"2,HKD,,\n',
         "line 2: the file is not valid CSV here: &#x27;,&#x27; expected after &#x27;&quot;&#x27;"),
    ],
)  # fmt: skip
def test_an_unreadable_file_is_refused_with_the_reason(client, market, content, problem):
    login_as(client, StaffFactory(role="Risk officer"))

    with writes_nothing():
        response = upload(client, content)

    assert response.status_code == 200
    assert problems_listed(response) == [problem]


def test_a_file_without_a_file_is_a_form_error(client, market):
    login_as(client, StaffFactory(role="Operations"))
    with writes_nothing():
        response = client.post(reverse(UPLOAD), {})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()


@pytest.mark.parametrize("role", ["Compliance", "Credit officer"])
def test_staff_without_the_permission_to_add_prices_cannot_upload(client, market, role):
    login_as(client, StaffFactory(role=role))

    assert client.get(reverse(UPLOAD)).status_code == 403
    with writes_nothing():
        assert upload(client, HEADER + "0700.HK,412.20,HKD,,\n").status_code == 403
    changelist = client.get(reverse("admin:collateral_price_changelist")).content.decode()
    assert "Upload prices" not in changelist
    assert reverse("admin:collateral_pricequote_health") in changelist


def test_the_price_list_offers_the_upload_to_operations(client, market):
    login_as(client, StaffFactory(role="Operations"))
    changelist = client.get(reverse("admin:collateral_price_changelist")).content.decode()
    assert f'href="{reverse(UPLOAD)}">Upload prices</a>' in changelist
    form = client.get(reverse(UPLOAD)).content.decode()
    assert 'enctype="multipart/form-data"' in form
    assert "<code>symbol,price,currency,observed_at,source</code>" in form


def test_the_upload_is_for_staff_only(client, market):
    with writes_nothing():
        response = upload(client, HEADER + "0700.HK,412.20,HKD,,\n")
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    assert Price.objects.filter(source="file prices.csv").count() == 0
