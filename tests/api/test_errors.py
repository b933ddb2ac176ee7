"""One error shape: each refusal of the business comes back as a 4xx with its own code and the reason in
words, and changes nothing; garbage input is a 4xx, never a 500."""

import datetime
from decimal import Decimal

import pytest
from django.test import override_settings
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient, APIRequestFactory

from accounts.audit import SYSTEM
from accounts.enums import KycStatus
from api.errors import exception_handler
from core.exceptions import DomainError
from financing.enums import ForcedSaleTrigger
from financing.lending.services import drawdown_create, facility_status_change
from financing.margin_calls.services import forced_sale_request, margin_call_issue
from financing.models import Drawdown
from tests.accounts.factories import ClientFactory, StaffFactory
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str, *, message: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    if message is not None:
        assert message in body["error"]["message"]
    return body["error"]


@pytest.fixture
def lender(key_client):
    return key_client("read", "lending", "collateral", "prices", "admin")


def post(api, path, body):
    return api.post(path, body, format="json")


# --- refusals of the business --------------------------------------------------------------------


def test_not_eligible(market, lender):
    client = ClientFactory(kyc_status=KycStatus.PENDING)
    facility = facility_with_pool(holdings={"BTC": "1"}, client=client)
    with writes_nothing():
        response = post(lender, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": "1000.00"})
    error = assert_error(
        response, 422, "not_eligible", message="is not eligible for financing: KYC is pending"
    )
    assert error["details"] == {"reasons": ["KYC is pending, not approved"]}


def test_a_refusal_is_in_the_language_the_caller_asks_for(market, lender):
    """The service's words go through gettext: under ``Accept-Language: zh-hant`` the message is Traditional
    Chinese; the code and the details, what a program reads, are the same."""
    facility = facility_with_pool(holdings={"BTC": "1"})  # LV 312,000: at most 265,200 at 85%
    with writes_nothing():
        response = lender.post(
            "/api/v1/drawdowns/",
            {"facility": facility.pk, "amount": "265200.01"},
            format="json",
            HTTP_ACCEPT_LANGUAGE="zh-hant",
        )
    error = assert_error(response, 422, "max_advance_exceeded", message="超過最高貸款比率 85.00%")
    assert "最多只可提取 HK$265,200.00" in error["message"]
    assert error["details"] == {"available": "265200.00"}


@pytest.mark.parametrize(
    ("arguments", "amount", "code", "message", "details"),
    [
        (
            {"limit": "100000.00"},
            "100000.01",
            "facility_limit_exceeded",
            "above the facility limit of HK$100,000.00; at most HK$100,000.00 can be drawn",
            {"available": "100000.00"},
        ),
        (
            {"credit_limit": "50000.00"},
            "50000.01",
            "credit_limit_exceeded",
            "above the approved credit limit of HK$50,000.00",
            {"available": "50000.00"},
        ),
        (
            {},
            "265200.01",
            "max_advance_exceeded",
            "above the max advance of 85.00%; at most HK$265,200.00 can be drawn",
            {"available": "265200.00"},
        ),
    ],
)
def test_limits(market, lender, arguments, amount, code, message, details):
    facility = facility_with_pool(holdings={"BTC": "1"}, **arguments)  # LV 312,000
    with writes_nothing():
        response = post(lender, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": amount})
    error = assert_error(response, 422, code, message=message)
    assert error["details"] == details


@pytest.mark.parametrize(
    ("capital", "code", "message"),
    [
        ("40000.00", "firm_limit_exceeded", "above 5 × capital (HK$200,000.00)"),
        (
            "1000000.00",
            "client_concentration_exceeded",
            "above the firm's per-client cap of 25.00% of capital",
        ),
    ],
)
def test_firm_limits(market, lender, settings, capital, code, message):
    settings.BROKER_CAPITAL_HKD = Decimal(capital)
    facility = facility_with_pool(holdings={"BTC": "1"})
    with writes_nothing():
        response = post(lender, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": "260000.00"})
    assert_error(response, 422, code, message=message)


def test_open_margin_call(market, lender):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    price("BTC", "75000")
    call = margin_call_issue(facility=facility, actor=SYSTEM)
    price("BTC", "100000")
    with writes_nothing():
        response = post(lender, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": "1.00"})
    assert_error(response, 422, "open_margin_call", message=f"has an open margin call (#{call.pk}")


def test_forced_sale_in_progress(market, lender):
    facility = facility_with_pool(holdings={"BTC": "1"})
    sale = forced_sale_request(facility=facility, trigger=ForcedSaleTrigger.MANUAL, actor=SYSTEM)
    with writes_nothing():
        response = post(lender, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": "1.00"})
    assert_error(
        response, 422, "forced_sale_in_progress", message=f"has a forced sale in progress (#{sale.pk})"
    )


def test_facility_not_active(market, lender):
    facility = facility_with_pool(holdings={"BTC": "1"})
    facility_status_change(facility=facility, status="suspended", actor=SYSTEM)
    with writes_nothing():
        response = post(lender, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": "1.00"})
    assert_error(response, 422, "facility_not_active", message="is suspended")


def test_repayment_more_than_the_debt(market, lender):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="1000.00", actor=SYSTEM)
    with writes_nothing():
        response = post(lender, "/api/v1/repayments/", {"facility": facility.pk, "amount": "1000.01"})
    error = assert_error(response, 422, "repayment_refused", message="is more than the debt of HK$1,000.00")
    assert error["details"] == {"debt": "1000.00"}


def test_withdrawals(market, lender):
    facility = facility_with_pool(holdings={"BTC": "1", "HKD": "100000.00"})
    drawdown_create(facility=facility, amount="300000.00", actor=SYSTEM)
    body = {"client": facility.client_id, "kind": "withdrawal", "asset": "HKD", "quantity": "100000.00"}
    with writes_nothing():
        response = post(lender, "/api/v1/collateral-movements/", body)
    assert_error(response, 422, "max_advance_exceeded", message="would lift the margin ratio of")
    with writes_nothing():
        response = post(lender, "/api/v1/collateral-movements/", {**body, "asset": "ETH", "quantity": "1"})
    assert_error(response, 422, "insufficient_holdings", message="The pool holds 0 ETH")


def test_an_ineligible_asset_cannot_be_deposited(market, lender):
    from collateral.services import asset_update

    asset_update(asset=market["0700.HK"], eligible=False, actor=SYSTEM)
    facility = facility_with_pool()
    body = {"client": facility.client_id, "kind": "deposit", "asset": "0700.HK", "quantity": "100"}
    with writes_nothing():
        response = post(lender, "/api/v1/collateral-movements/", body)
    assert_error(response, 422, "asset_not_eligible", message="0700.HK is not eligible collateral")


def asset_body(**overrides):
    return {
        "symbol": "DOGE",
        "name": "Dogecoin",
        "kind": "crypto",
        "currency": "USD",
        "decimals": 8,
        "haircut": "0.9",
    } | overrides


def test_unsupported_crypto(market, lender):
    with writes_nothing():
        response = post(lender, "/api/v1/assets/", asset_body())
    assert_error(response, 422, "unsupported_crypto", message="DOGE is not accepted as crypto collateral")


@override_settings(CRYPTO_ALLOWLIST=("BTC", "ETH", "SOL"))
def test_haircut_below_floor(market, lender):
    with writes_nothing():
        response = post(lender, "/api/v1/assets/", asset_body(symbol="SOL", haircut="0.5"))
    assert_error(response, 422, "haircut_below_floor", message="A crypto haircut must be at least 60%")


def test_a_price_batch_with_bad_rows_is_refused_whole(market, lender):
    body = {
        "source": "market-data",
        "prices": [
            {"symbol": "0700.HK", "price": "412.20"},
            {"symbol": "BTC", "price": "90000"},
            {"symbol": "NOPE.HK", "price": "1"},
        ],
    }
    with writes_nothing():
        response = post(lender, "/api/v1/prices/", body)
    error = assert_error(response, 400, "price_batch_refused", message="2 bad row(s); nothing was recorded")
    assert error["details"]["rows"] == [
        {"line": 2, "symbol": "BTC", "reason": "BTC is priced by the crypto oracle, not pushed"},
        {"line": 3, "symbol": "NOPE.HK", "reason": "there is no asset NOPE.HK"},
    ]


def test_a_stale_price_refusal_keeps_its_code_and_status():
    class StalePrice(DomainError):  # the forced-sale services will raise one like it
        code = "stale_price"
        api_status = 422

    request = APIRequestFactory().post("/api/v1/forced-sales/")
    response = exception_handler(
        StalePrice("BTC's price is stale: no forced sale runs on it."), {"request": request}
    )
    assert response.status_code == 422
    assert response.data == {
        "error": {
            "code": "stale_price",
            "message": "BTC's price is stale: no forced sale runs on it.",
            "details": {},
        }
    }


def test_a_second_pending_limit_change_is_a_conflict(market, staff_client):
    facility = facility_with_pool()
    api = staff_client("Credit officer")
    path = f"/api/v1/credit-profiles/{facility.client.credit_profile.pk}/limit-change-requests/"
    assert post(api, path, {"credit_limit": "6000000.00"}).status_code == 201
    with writes_nothing():
        response = post(api, path, {"credit_limit": "7000000.00"})
    assert_error(response, 409, "duplicate_pending_request", message="is already pending")


def test_an_invalid_transition_is_a_conflict(lender):
    created = post(
        lender, "/api/v1/webhook-endpoints/", {"name": "crm", "url": "https://crm.example/h"}
    ).json()
    path = f"/api/v1/webhook-endpoints/{created['id']}/deactivate/"
    assert lender.post(path).status_code == 200
    with writes_nothing():
        response = lender.post(path)
    assert_error(response, 409, "invalid_transition", message="is already deactivated")


# --- floats and garbage --------------------------------------------------------------------------


@pytest.fixture
def facility(market):
    return facility_with_pool(holdings={"BTC": "1"})


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (1000.5, "Send amounts as a JSON string"),
        (1000, "Send amounts as a JSON string"),
        (True, "Send amounts as a JSON string"),
        ("1e3", "is not a decimal amount"),
        ("NaN", "is not a decimal amount"),
        ("Infinity", "is not a decimal amount"),
        ("1,000.00", "is not a decimal amount"),
        ("", "is not a decimal amount"),
        ({"amount": "1"}, "is not a decimal amount"),
        (" 1000.00", "is not a decimal amount"),
        ("1000.00 ", "is not a decimal amount"),
        ("1000.00\n", "is not a decimal amount"),
        ("１０００", "is not a decimal amount"),  # full-width digits
        ("١٠٠٠", "is not a decimal amount"),  # Arabic-Indic digits
        ("1_000", "is not a decimal amount"),
        ("+1000", "is not a decimal amount"),
        ("1000.001", "At most 2 decimal places"),
        ("9" * 19, "At most 18 digits before the decimal point"),
        ("0", "Must be more than zero"),
        ("-5.00", "Must be more than zero"),
    ],
)
def test_amounts_must_be_exact_decimal_strings(lender, facility, amount, message):
    with writes_nothing():
        response = post(lender, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": amount})
    error = assert_error(response, 400, "invalid", message=message)
    assert error["message"].startswith("The request is not valid: amount: ")
    assert list(error["details"]) == ["amount"]


def test_trailing_zeros_beyond_the_places_are_fine(lender, facility):
    response = post(lender, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": "1000.0000"})
    assert response.status_code == 201
    assert response.json()["amount"] == "1000.00"


def test_field_errors_are_listed_together(lender):
    response = post(lender, "/api/v1/drawdowns/", {"amount": 5})
    error = assert_error(response, 400, "invalid")
    assert set(error["details"]) == {"facility", "amount"}
    assert "facility: This field is required." in error["message"]


def test_a_price_row_error_names_its_line(lender, market):
    response = post(
        lender, "/api/v1/prices/", {"source": "md", "prices": [{"symbol": "0700.HK", "price": 412.2}]}
    )
    error = assert_error(response, 400, "invalid", message="prices[0].price: Send amounts as a JSON string")
    assert list(error["details"]["prices"]["0"]) == ["price"]


def test_a_time_without_an_offset_is_refused(lender, market):
    body = {
        "source": "md",
        "prices": [{"symbol": "0700.HK", "price": "412.2", "observed_at": "2026-03-02T16:10:00"}],
    }
    assert_error(
        post(lender, "/api/v1/prices/", body), 400, "invalid", message="Give the time with its offset"
    )


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "parse_error"),
        (b"[1, 2, 3]", "application/json", 400, "invalid"),
        (b'"just a string"', "application/json", 400, "invalid"),
        (b"null", "application/json", 400, "invalid"),
        (b"amount=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"\xff\xfe\x00", "application/json", 400, "parse_error"),
        (b'{"facility": "\\u0000", "amount": "1.00"}', "application/json", 400, "invalid"),
    ],
)
def test_bodies_that_are_not_what_we_asked_for(lender, body, content_type, status, code):
    response = lender.post("/api/v1/drawdowns/", body, content_type=content_type)
    assert_error(response, status, code)


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000],
    ids=["list", "object"],
)
def test_a_deeply_nested_body_is_400_not_500(lender, facility, body):
    with writes_nothing():
        response = lender.post("/api/v1/drawdowns/", body, content_type="application/json")
    assert_error(response, 400, "parse_error", message="nested too deeply")
    # With an idempotency key the body is fingerprinted first: that must not fail either (the refusal is
    # stored for the key, as every 4xx is).
    response = lender.post(
        "/api/v1/drawdowns/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert_error(response, 400, "parse_error", message="nested too deeply")
    assert not Drawdown.objects.exists()


def test_a_body_nested_deeper_than_any_request_needs_is_refused(lender, facility):
    body = {
        "facility": facility.pk,
        "amount": "1000.00",
        "memo": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    }
    with writes_nothing():
        response = post(lender, "/api/v1/drawdowns/", body)
    assert_error(response, 400, "parse_error", message="at most 32 levels")


def test_a_key_sent_twice_is_refused(lender, facility):
    body = f'{{"facility": {facility.pk}, "amount": "1.00", "amount": "900000.00"}}'.encode()
    with writes_nothing():
        response = lender.post("/api/v1/drawdowns/", body, content_type="application/json")
    assert_error(response, 400, "parse_error", message="the key 'amount' appears twice in one object")


def test_a_key_sent_twice_in_a_nested_object_is_refused(lender, market):
    body = b'{"source": "feed", "prices": [{"symbol": "0700.HK", "price": "400", "price": "0.001"}]}'
    with writes_nothing():
        response = lender.post("/api/v1/prices/", body, content_type="application/json")
    assert_error(response, 400, "parse_error", message="the key 'price' appears twice")


def test_a_nul_character_in_a_name_is_refused(lender):
    response = post(lender, "/api/v1/clients/", {"name": "Evil\u0000Co", "kind": "corporation"})
    assert_error(response, 400, "invalid", message="Null characters are not allowed")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_too_large_is_413(lender):
    response = post(lender, "/api/v1/clients/", {"name": "x" * 2000, "kind": "corporation"})
    assert_error(response, 413, "request_too_large")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/nothing-here/", 404, "not_found"),
        ("/api/v1/facilities/abc/", 404, "not_found"),
        ("/api/v1/facilities/99999999999999999999999999/", 404, "not_found"),
        ("/api/v1/events/not-a-uuid/", 404, "not_found"),
        ("/api/v1/assets/%00/", 404, "not_found"),
        ("/api/v1/facilities/?client=abc", 400, "invalid"),
        ("/api/v1/facilities/?client=99999999999999999999999999", 400, "invalid"),
        ("/api/v1/facilities/?reference=%00", 400, "invalid"),
        ("/api/v1/drawdowns/?created_after=yesterday", 400, "invalid"),
        ("/api/v1/drawdowns/?created_after=0001-01-01T00:00:00%2B14:00", 400, "invalid"),
        ("/api/v1/facilities/?page=0", 404, "not_found"),
        ("/api/v1/facilities/?page=99", 404, "not_found"),
        ("/api/v1/facilities/?status=exploded", 400, "invalid"),
    ],
)
def test_paths_and_queries_that_lead_nowhere(lender, facility, path, status, code):
    assert_error(lender.get(path), status, code)


def test_an_unknown_ordering_is_ignored_and_page_size_is_capped(lender, facility):
    response = lender.get("/api/v1/facilities/?ordering=nonsense&page_size=100000")
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_a_method_that_is_not_there_is_405(lender, facility):
    assert_error(lender.delete(f"/api/v1/facilities/{facility.pk}/"), 405, "method_not_allowed")
    assert_error(
        lender.put(f"/api/v1/clients/{facility.client_id}/", {}, format="json"), 405, "method_not_allowed"
    )


def test_only_json_is_served(lender, facility):
    response = lender.get("/api/v1/facilities/", HTTP_ACCEPT="application/xml")
    assert_error(response, 406, "not_acceptable")


def test_the_browsable_api_serves_staff_html(facility):
    client = APIClient()
    login_as(client, StaffFactory(role="Risk officer"))
    response = client.get(f"/api/v1/facilities/{facility.pk}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert "margin_ratio" in response.content.decode()


def test_an_unexpected_error_is_a_500_in_the_same_shape_and_logged(lender, facility, monkeypatch, caplog):
    from api.financing import views

    def broken(facility_id, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(views, "facility_read", broken)
    response = lender.get(f"/api/v1/facilities/{facility.pk}/")
    assert_error(response, 500, "server_error")
    assert "a bug" not in response.content.decode()
    assert any("Unexpected error" in record.message for record in caplog.records)


def test_aware_times_far_in_the_future_are_refused(lender, market):
    future = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).isoformat()
    body = {"source": "md", "prices": [{"symbol": "0700.HK", "price": "412.2", "observed_at": future}]}
    error = assert_error(post(lender, "/api/v1/prices/", body), 400, "price_batch_refused")
    assert "is in the future" in error["details"]["rows"][0]["reason"]


@pytest.mark.parametrize("path", ["/api/v1/drawdowns/", "/api/v1/facilities/", "/api/v1/assets/BTC/"])
def test_the_browsable_api_lists_and_asks_to_log_in(market, path):
    staff = APIClient()
    login_as(staff, StaffFactory(role="Credit officer"))
    assert staff.get(path, HTTP_ACCEPT="text/html").status_code == 200
    anonymous = APIClient().get(path, HTTP_ACCEPT="text/html")
    assert anonymous.status_code == 401
    assert "Log in" in anonymous.content.decode()


@pytest.mark.parametrize("path", ["/api/v1/drawdowns/", "/api/v1/clients/", "/api/v1/webhook-endpoints/"])
def test_options_describes_without_failing(lender, path):
    response = lender.options(path)
    assert response.status_code == 200
    assert response.json()["name"]


def test_a_validation_error_without_fields_still_has_details_as_an_object():
    request = APIRequestFactory().post("/api/v1/prices/")
    response = exception_handler(ValidationError("The batch is empty."), {"request": request})
    assert response.status_code == 400
    assert response.data["error"]["details"] == {"non_field_errors": ["The batch is empty."]}
    assert response.data["error"]["message"] == "The request is not valid: The batch is empty."
