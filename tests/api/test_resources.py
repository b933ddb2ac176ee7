"""Each resource does what it says, with exact decimals as strings, through the services (audited, with
the caller as the actor)."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djmoney.money import Money
from rest_framework.renderers import JSONRenderer

from accounts.audit import SYSTEM
from accounts.models import ApprovalRequest, AuditEvent, CreditProfile
from accounts.services import approval_request_approve
from api.financing.serializers import FacilityOut
from collateral.models import CollateralMovement
from collateral.selectors import current_prices, fx_to_hkd, pool_holdings
from collateral.services import asset_update
from financing.lending.services import drawdown_create, fee_charge
from financing.margin_calls.services import margin_call_issue
from financing.models import Facility, MarginPolicy
from financing.selectors import cash_top_ups_to_target, facility_pool, facility_valuation, open_margin_call
from notifications.models import Event, WebhookEndpoint
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import asset, price
from tests.financing.factories import facility_with_pool, varied_book
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(key_client):
    return key_client("read", "prices", "collateral", "lending", "admin", name="oms")


# --- clients -------------------------------------------------------------------------------------


def test_onboard_a_client_and_change_it(api):
    response = api.post(
        "/api/v1/clients/", {"name": "Victoria Harbour Ltd", "kind": "corporation"}, format="json"
    )
    assert response.status_code == 201, response.json()
    client = response.json()
    assert client["reference"].startswith("C")
    assert (client["pi_portfolio_value"], client["pi_total_assets"], client["pi_expires_on"]) == (
        None,
        None,
        None,
    )
    assert client["kyc_status"] == "pending"
    assert client["eligible"] is False
    assert client["eligibility_reasons"] == [
        "KYC is pending, not approved",
        "there is no professional-investor assessment",
    ]
    created = AuditEvent.objects.get(action="client.created")
    assert created.actor_label == "api-key:oms"

    response = api.patch(f"/api/v1/clients/{client['id']}/", {"email": "ops@victoria.example"}, format="json")
    assert response.status_code == 200
    assert response.json()["email"] == "ops@victoria.example"
    updated = AuditEvent.objects.get(action="client.updated")
    assert (updated.before, updated.after) == ({"email": ""}, {"email": "ops@victoria.example"})


@pytest.mark.parametrize(
    "assessment",
    [
        {"kyc_status": "approved"},
        {"kyc_status": "pending"},
        {"pi_portfolio_value": "9000000.00", "pi_assessed_on": "2026-01-05"},
        {"pi_total_assets": "60000000.00"},
        {"pi_expires_on": "2027-01-05"},
    ],
)
def test_a_client_is_not_created_with_its_kyc_status_or_evidence(api, assessment):
    """Onboarding to eligible goes through each step's four-eyes: the KYC status and the professional-investor
    evidence are set only by an approved assessment change request, never with the client's record."""
    with writes_nothing():
        response = api.post(
            "/api/v1/clients/", {"name": "Shortcut Ltd", "kind": "corporation", **assessment}, format="json"
        )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "four_eyes_required"
    assert error["details"] == {"fields": sorted(assessment)}
    assert "assessment change request" in error["message"]


def test_a_duplicate_reference_is_refused(api):
    assert (
        api.post(
            "/api/v1/clients/", {"reference": "HV-1", "name": "A", "kind": "individual"}, format="json"
        ).status_code
        == 201
    )
    with writes_nothing():
        response = api.post(
            "/api/v1/clients/", {"reference": "HV-1", "name": "B", "kind": "individual"}, format="json"
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "duplicate_reference"


def test_clients_filter_and_order(api):
    for name, kind in (
        ("Beta Ltd", "corporation"),
        ("Alpha Ltd", "corporation"),
        ("Chan Tai Man", "individual"),
    ):
        api.post("/api/v1/clients/", {"name": name, "kind": kind}, format="json")
    names = [c["name"] for c in api.get("/api/v1/clients/?kind=corporation&ordering=name").json()["results"]]
    assert names == ["Alpha Ltd", "Beta Ltd"]
    assert [c["name"] for c in api.get("/api/v1/clients/?name=tai").json()["results"]] == ["Chan Tai Man"]
    page = api.get("/api/v1/clients/?page_size=2&ordering=-name").json()
    assert page["count"] == 3
    assert [c["name"] for c in page["results"]] == ["Chan Tai Man", "Beta Ltd"]
    assert "page=2" in page["next"]


# --- credit profiles -----------------------------------------------------------------------------


def test_a_staff_member_asks_for_a_new_limit_and_a_second_one_approves_it(market, staff_client):
    facility = facility_with_pool(credit_limit="5000000.00")
    profile = facility.client.credit_profile
    maker = staff_client("Credit officer")
    path = f"/api/v1/credit-profiles/{profile.pk}/"
    response = maker.post(
        path + "limit-change-requests/",
        {"credit_limit": "8000000.00", "reason": "more collateral"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    request = response.json()
    assert request["status"] == "pending"
    assert request["current"] == {"credit_limit": "5000000.00"}
    assert request["proposed"] == {"credit_limit": "8000000.00"}
    assert request["requested_by"] == maker.user.username
    shown = maker.get(path).json()
    assert shown["credit_limit"] == "5000000.00"  # unchanged until a second person approves
    assert shown["pending_limit_change"] == {"id": request["id"], "credit_limit": "8000000.00"}

    approval_request_approve(
        request=ApprovalRequest.objects.get(pk=request["id"]), actor=StaffFactory(role="Credit officer")
    )
    shown = maker.get(path).json()
    assert shown["credit_limit"] == "8000000.00"
    assert shown["pending_limit_change"] is None


def test_an_api_key_cannot_ask_for_a_limit_change(market, api):
    profile = facility_with_pool().client.credit_profile
    with writes_nothing():
        response = api.post(
            f"/api/v1/credit-profiles/{profile.pk}/limit-change-requests/",
            {"credit_limit": "1.00"},
            format="json",
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "staff_session_required"


def test_staff_without_the_permission_cannot_ask(market, staff_client):
    profile = facility_with_pool().client.credit_profile
    operations = staff_client("Operations")
    with writes_nothing():
        response = operations.post(
            f"/api/v1/credit-profiles/{profile.pk}/limit-change-requests/",
            {"credit_limit": "1.00"},
            format="json",
        )
    assert response.status_code == 403


# --- assets, prices and FX -----------------------------------------------------------------------


def test_assets_are_listed_with_haircuts_and_current_prices(market, api):
    assets = {a["symbol"]: a for a in api.get("/api/v1/assets/?page_size=50").json()["results"]}
    assert set(assets) == {"HKD", "USD", "BTC", "ETH", "0700.HK", "0005.HK"}
    btc = assets["BTC"]
    assert (btc["kind"], btc["currency"], btc["decimals"], btc["haircut"]) == ("crypto", "USD", 8, "0.6")
    assert btc["lot_size"] == "0.00000001"
    assert btc["current_price"]["price"] == "100000"
    assert assets["HKD"]["current_price"] is None
    assert assets["0700.HK"]["concentration_limit"] == "0.5"
    tencent = api.get("/api/v1/assets/0700.hk/")
    assert tencent.status_code == 200
    assert tencent.json()["symbol"] == "0700.HK"
    assert [
        a["symbol"] for a in api.get("/api/v1/assets/?kind=security&ordering=haircut").json()["results"]
    ] == [
        "0005.HK",
        "0700.HK",
    ]


def test_add_an_asset(market, api):
    body = {
        "symbol": "0001.hk",
        "name": "CK Hutchison",
        "kind": "security",
        "currency": "HKD",
        "decimals": 0,
        "haircut": "0.35",
        "lot_size": "500",
    }
    response = api.post("/api/v1/assets/", body, format="json")
    assert response.status_code == 201, response.json()
    asset = response.json()
    assert (asset["symbol"], asset["haircut"], asset["lot_size"], asset["current_price"]) == (
        "0001.HK",
        "0.35",
        "500",
        None,
    )
    assert AuditEvent.objects.get(action="asset.created", target_id="0001.HK").actor_label == "api-key:oms"


def test_push_prices_and_fx_and_read_them_back(market, api):
    body = {
        "source": "market-data",
        "prices": [
            {"symbol": "0700.HK", "price": "412.20", "observed_at": "2026-01-05T16:10:00+08:00"},
            {"symbol": "0005.hk", "price": "101", "currency": "HKD", "source": "exchange-close"},
            {"symbol": "USD/HKD", "price": "7.7850"},
        ],
    }
    response = api.post("/api/v1/prices/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"prices_recorded": 2, "fx_rates_recorded": 1, "held": []}
    assert current_prices()["0005.HK"].price == Decimal("101")
    assert fx_to_hkd()["USD"] == Decimal("7.785")
    tencent = api.get("/api/v1/prices/?symbol=0700.HK").json()["results"]
    # the pushed price is older than the test market's own, so the newer one stays current
    assert [p["price"] for p in tencent] == ["400"]
    hsbc = api.get("/api/v1/prices/?symbol=0005.HK").json()["results"][0]
    assert (hsbc["price"], hsbc["source"], hsbc["is_stale"]) == ("101", "exchange-close", False)
    fx = api.get("/api/v1/fx-rates/").json()["results"]
    assert [(r["pair"], r["rate"]) for r in fx] == [("USD/HKD", "7.785")]
    assert AuditEvent.objects.filter(action="price.recorded", actor_label="api-key:oms").count() == 2


# --- collateral movements ------------------------------------------------------------------------


def test_deposit_then_withdraw_collateral(market, api):
    facility = facility_with_pool()
    body = {
        "client": facility.client_id,
        "kind": "deposit",
        "asset": "BTC",
        "quantity": "1.5",
        "external_reference": "CUST-1",
    }
    response = api.post("/api/v1/collateral-movements/", body, format="json")
    assert response.status_code == 201, response.json()
    movement = response.json()
    assert (movement["kind"], movement["asset"], movement["quantity"], movement["made_by"]) == (
        "deposit",
        "BTC",
        "1.5",
        "api-key:oms",
    )
    assert pool_holdings(facility_pool(facility)) == {"BTC": Decimal("1.5")}

    again = api.post("/api/v1/collateral-movements/", body, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == movement["id"]
    with writes_nothing():
        conflict = api.post("/api/v1/collateral-movements/", {**body, "quantity": "2"}, format="json")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "external_reference_conflict"

    out = {"client": facility.client_id, "kind": "withdrawal", "asset": "btc", "quantity": "0.25"}
    assert api.post("/api/v1/collateral-movements/", out, format="json").status_code == 201
    assert pool_holdings(facility_pool(facility)) == {"BTC": Decimal("1.25")}
    kinds = [
        m["kind"]
        for m in api.get(f"/api/v1/collateral-movements/?client={facility.client_id}").json()["results"]
    ]
    assert kinds == ["withdrawal", "deposit"]


def test_a_deposit_opens_the_pool_of_a_client_without_one(api):
    client = api.post("/api/v1/clients/", {"name": "New Co", "kind": "corporation"}, format="json").json()
    body = {"client": client["id"], "kind": "deposit", "asset": "HKD", "quantity": "1000.00"}
    asset("HKD")
    assert api.post("/api/v1/collateral-movements/", body, format="json").status_code == 201
    assert CollateralMovement.objects.get().pool.client_id == client["id"]


def test_a_quantity_finer_than_the_asset_allows_is_refused(market, api):
    facility = facility_with_pool()
    body = {"client": facility.client_id, "kind": "deposit", "asset": "BTC", "quantity": "0.000000001"}
    with writes_nothing():
        response = api.post("/api/v1/collateral-movements/", body, format="json")
    assert response.status_code == 400
    assert "more than 8 decimal places for BTC" in response.json()["error"]["message"]


# --- facilities ----------------------------------------------------------------------------------


def test_a_facility_with_its_valuation_in_exact_decimals(market, api):
    facility = facility_with_pool(holdings={"BTC": "1", "0700.HK": "1000", "HKD": "100000.00"})
    drawdown_create(facility=facility, amount="580000.00", actor=SYSTEM)
    fee_charge(facility=facility, amount="150.00", description="Arrangement fee", actor=SYSTEM)
    body = api.get(f"/api/v1/facilities/{facility.pk}/").json()
    # MV: BTC 780,000 + Tencent 400,000 + cash 100,000 = 1,280,000. Tencent's 400,000 is within its 50%
    # concentration limit (640,000). LV: 312,000 + 280,000 + 100,000 = 692,000. Debt 580,150.
    assert body["market_value"] == "1280000.00"
    assert body["margin_value"] == "692000.00"
    assert (body["debt"], body["principal_outstanding"], body["fees_unpaid"], body["interest_accrued"]) == (
        "580150.00",
        "580000.00",
        "150.00",
        "0.00",
    )
    assert body["margin_ratio"] == "0.83836705"  # 580,150 / 692,000
    assert body["market_ltv"] == "0.45324219"  # 580,150 / 1,280,000
    assert body["margin_surplus"] == "111850.00"
    assert body["margin_deficiency"] == "0.00"
    assert body["margin_status"] == "ok"
    assert body["available_to_draw"] == "8050.00"  # 85% × 692,000 − 580,150
    assert body["thresholds"]["max_advance"] == "0.85000000"
    assert {p["symbol"]: p for p in body["positions"]} == {
        "BTC": {
            "symbol": "BTC",
            "quantity": "1",
            "market_value": "780000.00",
            "margin_value": "312000.00",
            "priced": True,
        },
        "0700.HK": {
            "symbol": "0700.HK",
            "quantity": "1000",
            "market_value": "400000.00",
            "margin_value": "280000.00",
            "priced": True,
        },
        "HKD": {
            "symbol": "HKD",
            "quantity": "100000",
            "market_value": "100000.00",
            "margin_value": "100000.00",
            "priced": True,
        },
    }
    valuation = facility_valuation(facility)
    assert Decimal(body["margin_ratio"]) == valuation.margin_ratio
    assert body["open_margin_call"] is None


def test_an_infinite_ratio_is_null_and_says_so(market, api):
    facility = facility_with_pool(holdings={"0005.HK": "4000"})
    drawdown_create(facility=facility, amount="100000.00", actor=SYSTEM)
    asset_update(asset=market["0005.HK"], eligible=False, actor=SYSTEM)
    body = api.get(f"/api/v1/facilities/{facility.pk}/").json()
    assert body["margin_value"] == "0.00"
    assert body["margin_ratio"] is None
    assert body["margin_status"] == "forced_sale"
    assert body["margin_deficiency"] == "100000.00"
    assert body["margin_surplus"] == "-100000.00"


def _facilities(count: int) -> None:
    policy = MarginPolicy.objects.create(name=f"Tight {count}", max_advance=Decimal("0.5"))
    for index in range(count):
        holdings = [{"BTC": "1"}, {"ETH": "10", "0005.HK": "800"}, {}, {"0700.HK": "300", "HKD": "5000.00"}][
            index % 4
        ]
        facility = facility_with_pool(holdings=holdings, policy=policy if index % 3 == 0 else None)
        if holdings:
            drawdown_create(facility=facility, amount="1000.00", actor=SYSTEM)


def test_a_list_values_every_facility_as_its_own_page_does_in_a_fixed_number_of_queries(market, api):
    _facilities(3)
    api.get("/api/v1/assets/")  # the key's first use of the minute is recorded: not part of the count
    with CaptureQueriesContext(connection) as three:
        small = api.get("/api/v1/facilities/").json()["results"]
    _facilities(6)
    with CaptureQueriesContext(connection) as nine:
        large = api.get("/api/v1/facilities/").json()["results"]
    assert len(small) == 3
    assert len(large) == 9
    assert len(nine.captured_queries) == len(three.captured_queries)
    for row in large:
        detail = api.get(f"/api/v1/facilities/{row['id']}/").json()
        row.pop("valued_at"), detail.pop("valued_at")
        assert row == detail


def test_a_read_is_written_as_the_facility_serializer_writes_it_over_a_varied_book(market, api):
    """The detail read writes its body without the serializer (``facility_representation``); the list and the
    schema keep ``FacilityOut``: the two agree field for field, in the same order, on every kind of facility."""
    book = varied_book()
    price("BTC", "10000")  # the first facility above its target, with a margin call
    margin_call_issue(facility=book[0], actor=SYSTEM)
    for facility in book:
        detail = api.get(f"/api/v1/facilities/{facility.pk}/").json()
        context = {
            "valuations": {facility.pk: facility_valuation(facility)},
            "open_margin_calls": {facility.pk: open_margin_call(facility)}
            if open_margin_call(facility)
            else {},
            "cash_top_ups": cash_top_ups_to_target([facility.pk]),
            "valued_at": timezone.now(),
        }
        expected = json.loads(
            JSONRenderer().render(FacilityOut(Facility.objects.get(pk=facility.pk), context=context).data)
        )
        detail.pop("valued_at"), expected.pop("valued_at")
        assert list(detail) == list(expected)
        assert detail == expected, facility.reference
    assert api.get(f"/api/v1/facilities/{book[0].pk}/").json()["open_margin_call"] is not None


def test_a_facility_read_takes_the_key_check_and_one_statement(market, api):
    facility = facility_with_pool(holdings={"BTC": "1", "0700.HK": "1000"})
    api.get(f"/api/v1/facilities/{facility.pk}/")  # the key's first use of the minute is recorded
    with CaptureQueriesContext(connection) as queries:
        assert api.get(f"/api/v1/facilities/{facility.pk}/").status_code == 200
    assert len(queries.captured_queries) == 2  # the API key, then the facility with its valuation
    assert api.get(f"/api/v1/facilities/{2**63}/").status_code == 404


# --- drawdowns, repayments, margin calls, forced sales, events -----------------------------------


def test_draw_down_and_repay(market, api):
    facility = facility_with_pool(holdings={"BTC": "1"})
    fee_charge(facility=facility, amount="100.00", description="Arrangement fee", actor=SYSTEM)
    response = api.post("/api/v1/drawdowns/", {"facility": facility.pk, "amount": "156000.00"}, format="json")
    assert response.status_code == 201
    drawdown = response.json()
    assert (drawdown["amount"], drawdown["currency"], drawdown["facility_reference"]) == (
        "156000.00",
        "HKD",
        facility.reference,
    )
    assert drawdown["margin_ratio_after"] == "0.50032051"  # 156,100 / 312,000
    response = api.post("/api/v1/repayments/", {"facility": facility.pk, "amount": "50100.00"}, format="json")
    assert response.status_code == 201
    repayment = response.json()
    assert (repayment["to_fees"], repayment["to_interest"], repayment["to_principal"]) == (
        "100.00",
        "0.00",
        "50000.00",
    )
    assert api.get(f"/api/v1/facilities/{facility.pk}/").json()["debt"] == "106000.00"
    assert [d["id"] for d in api.get(f"/api/v1/drawdowns/?facility={facility.pk}").json()["results"]] == [
        drawdown["id"]
    ]
    assert api.get(f"/api/v1/repayments/{repayment['id']}/").json() == repayment


def test_a_currency_other_than_hkd_is_refused(market, api):
    facility = facility_with_pool(holdings={"BTC": "1"})
    response = api.post(
        "/api/v1/drawdowns/", {"facility": facility.pk, "amount": "1.00", "currency": "USD"}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["currency"]


def test_margin_calls_and_forced_sales(world, api):
    mine, _ = world
    call = api.get(f"/api/v1/margin-calls/{mine.margin_call.pk}/").json()
    # at issue: debt 240,000 against LV 234,000 (BTC at US$75,000); target 85%
    assert (call["status"], call["ratio_at_issue"]) == ("issued", "1.02564103")
    assert (call["debt_at_issue"], call["margin_value_at_issue"]) == ("240000.00", "234000.00")
    assert call["repayment_due"] == "41100.00"  # 240,000 − 0.85 × 234,000
    assert call["top_up_due"] == "48352.95"  # 240,000 / 0.85 − 234,000, rounded up
    assert call["deadline"].endswith("+08:00")
    assert (
        api.get(f"/api/v1/facilities/{mine.facility.pk}/").json()["open_margin_call"] == mine.margin_call.pk
    )
    assert len(api.get("/api/v1/margin-calls/?status=issued").json()["results"]) == 2
    assert api.get("/api/v1/margin-calls/?status=cured").json()["results"] == []
    sale = api.get(f"/api/v1/forced-sales/{mine.forced_sale.pk}/").json()
    assert (sale["status"], sale["trigger"], sale["margin_call"]) == ("planned", "manual", None)
    assert sale["ratio_at_request"] == "1.02564103"


def test_events_are_a_feed(world, api):
    mine, theirs = world
    Event.objects.create(
        type="forced_sale.filled", client=mine.client, summary="sold", payload={"amount": "1.00"}
    )
    types = [e["type"] for e in api.get("/api/v1/events/").json()["results"]]
    assert types[0] == "forced_sale.filled"
    filtered = api.get("/api/v1/events/?type=margin_call.issued").json()["results"]
    assert {e["id"] for e in filtered} == {str(mine.event.pk), str(theirs.event.pk)}
    issued = api.get(f"/api/v1/events/{mine.event.pk}/").json()
    assert issued["payload"]["margin_call"] == mine.margin_call.pk
    assert issued["payload"]["repayment_due"] == "41100.00"
    recent = api.get(
        "/api/v1/events/",
        {"occurred_after": mine.event.occurred_at.isoformat(), "type": "forced_sale.filled"},
    )
    assert recent.json()["count"] == 1


# --- webhook endpoints ---------------------------------------------------------------------------


def test_register_change_and_deactivate_a_webhook_endpoint(api):
    response = api.post(
        "/api/v1/webhook-endpoints/",
        {
            "name": "crm",
            "url": "https://crm.broker.example/hooks",
            "event_types": ["margin_call.issued", "forced_sale.filled"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) > 40
    assert created["event_types"] == ["forced_sale.filled", "margin_call.issued"]
    assert WebhookEndpoint.objects.get().secret == created["secret"]
    path = f"/api/v1/webhook-endpoints/{created['id']}/"
    assert "secret" not in api.get(path).json()
    assert created["secret"] not in str(list(AuditEvent.objects.values_list("after", flat=True)))

    changed = api.patch(path, {"event_types": []}, format="json")
    assert changed.status_code == 200
    assert changed.json()["event_types"] == []
    assert AuditEvent.objects.get(action="webhook_endpoint.updated").before == {
        "event_types": ["forced_sale.filled", "margin_call.issued"]
    }
    deactivated = api.post(path + "deactivate/")
    assert deactivated.status_code == 200
    assert deactivated.json()["is_active"] is False
    assert AuditEvent.objects.get(action="webhook_endpoint.deactivated").actor_label == "api-key:oms"
    with writes_nothing():
        assert api.patch(path, {"name": "crm-2"}, format="json").status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "url": "ftp://files.example/"},
        {"name": "x", "url": "not a url"},
        {"name": "x", "url": "https://ok.example/", "event_types": ["Margin Call!"]},
        {"name": "x", "url": "https://ok.example/", "event_types": "margin_call.issued"},
        {"name": "x", "url": "https://ok.example/", "secret": "short"},
    ],
)
def test_a_webhook_endpoint_is_checked(api, body):
    with writes_nothing():
        response = api.post("/api/v1/webhook-endpoints/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@override_settings(WEBHOOK_TRUSTED_HOSTS=[])
def test_a_webhook_endpoint_inside_the_network_is_refused(api):
    with writes_nothing():
        response = api.post(
            "/api/v1/webhook-endpoints/",
            {"name": "x", "url": "http://169.254.169.254/latest/"},
            format="json",
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "webhook_address_not_allowed"
    assert "WEBHOOK_TRUSTED_HOSTS" in error["message"]


def test_credit_profiles_list(market, api):
    facility_with_pool(credit_limit="3000000.00")
    profiles = api.get("/api/v1/credit-profiles/").json()["results"]
    assert [(p["credit_limit"], p["currency"], p["pending_limit_change"]) for p in profiles] == [
        ("3000000.00", "HKD", None)
    ]
    assert CreditProfile.objects.get().credit_limit == Money("3000000.00", "HKD")
