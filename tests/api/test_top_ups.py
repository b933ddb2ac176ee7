"""The automatic top-up over the API: the custody feed of free holdings, standing instructions (asked for by
the client or staff, never by a system), and the record of each automatic top-up."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts import roles
from accounts.audit import SYSTEM
from accounts.services import approval_request_approve
from collateral.selectors import custody_holdings, pool_holdings
from financing.enums import InstructionStatus
from financing.lending.services import drawdown_create
from financing.models import MarginCall, StandingTopUpInstruction
from financing.monitoring.cycle import monitoring_cycle_run
from financing.selectors import facility_pool, pending_sign_off_of
from tests.accounts.factories import StaffFactory
from tests.api.conftest import client_user
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def custody(key_client):
    return key_client("read", "collateral", name="custody")


@pytest.fixture
def facility(market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    return facility


@pytest.fixture
def portal(facility):
    """The facility's client, logged in as a client user."""
    api = APIClient()
    api.user = client_user(facility.client)
    login_as(api, api.user)
    return api


# --- the custody feed --------------------------------------------------------------------------------


def test_the_custody_system_pushes_free_holdings(facility, custody):
    body = {
        "client": facility.client_id,
        "kind": "received",
        "asset": "hkd",
        "quantity": "50000.00",
        "external_reference": "CUST-1",
    }
    response = custody.post("/api/v1/custody-movements/", body, format="json")
    assert response.status_code == 201, response.json()
    movement = response.json()
    assert (movement["kind"], movement["asset"], movement["quantity"], movement["made_by"]) == (
        "received",
        "HKD",
        "50000",
        "api-key:custody",
    )
    assert custody_holdings(facility.client) == {"HKD": Decimal("50000.00")}
    assert pool_holdings(facility_pool(facility)) == {"BTC": Decimal("1")}  # free, not pledged

    again = custody.post("/api/v1/custody-movements/", body, format="json", HTTP_IDEMPOTENCY_KEY="another")
    assert (again.status_code, again.json()["id"]) == (200, movement["id"])
    with writes_nothing():
        conflict = custody.post("/api/v1/custody-movements/", {**body, "quantity": "1.00"}, format="json")
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "external_reference_conflict")

    out = {**body, "kind": "released", "quantity": "50000.01", "external_reference": "CUST-2"}
    with writes_nothing():
        refused = custody.post("/api/v1/custody-movements/", out, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "insufficient_holdings")
    assert "50000.01 HKD cannot be released" in refused.json()["error"]["message"]
    out["quantity"] = "10000.00"
    assert custody.post("/api/v1/custody-movements/", out, format="json").status_code == 201

    holdings = custody.get(f"/api/v1/custody-holdings/?client={facility.client_id}").json()["results"]
    assert holdings == [
        {
            "client": facility.client_id,
            "client_reference": facility.client.reference,
            "asset": "HKD",
            "quantity": "40000",
        }
    ]
    kinds = [
        m["kind"] for m in custody.get("/api/v1/custody-movements/?ordering=-created_at").json()["results"]
    ]
    assert kinds == ["released", "received"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"external_reference": ""}, "invalid"),
        ({"quantity": 5}, "invalid"),
        ({"quantity": "0.1", "asset": "0005.HK"}, "invalid"),
        ({"kind": "deposit"}, "invalid"),
        ({"asset": "DOGE"}, "invalid"),
        ({"client": 999999}, "invalid"),
    ],
)
def test_bad_custody_movements_are_refused(facility, custody, change, code):
    body = {"client": facility.client_id, "kind": "received", "asset": "HKD", "quantity": "1.00"}
    body = {**body, "external_reference": "CUST-1", **change}
    with writes_nothing():
        response = custody.post("/api/v1/custody-movements/", body, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)


def test_the_custody_feed_needs_the_collateral_scope(facility, key_client):
    body = {"client": facility.client_id, "kind": "received", "asset": "HKD", "quantity": "1.00"}
    response = key_client("read", "lending").post(
        "/api/v1/custody-movements/", {**body, "external_reference": "X"}, format="json"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (403, "scope_missing")


def test_a_client_user_sees_only_their_own_free_holdings(facility, portal, custody):
    other = facility_with_pool()
    for client, reference in ((facility.client, "A"), (other.client, "B")):
        body = {"client": client.pk, "kind": "received", "asset": "BTC", "quantity": "0.5"}
        custody.post("/api/v1/custody-movements/", {**body, "external_reference": reference}, format="json")
    mine = portal.get("/api/v1/custody-holdings/").json()["results"]
    assert [row["client"] for row in mine] == [facility.client_id]
    assert portal.get(f"/api/v1/custody-holdings/?client={other.client_id}").json()["results"] == []
    assert len(custody.get("/api/v1/custody-holdings/").json()["results"]) == 2


# --- standing instructions --------------------------------------------------------------------------


def test_a_client_asks_staff_sign_off_and_the_client_revokes(facility, portal):
    body = {"client": facility.client_id, "trigger": "warning", "asset_order": ["eth", "0005.HK"]}
    response = portal.post("/api/v1/standing-top-up-instructions/", body, format="json")
    assert response.status_code == 201, response.json()
    instruction = response.json()
    assert (instruction["status"], instruction["trigger"], instruction["asset_order"]) == (
        "pending_sign_off",
        "warning",
        ["ETH", "0005.HK"],
    )
    assert (instruction["requested_by"], instruction["signed_off_by"]) == (portal.user.username, None)

    signer = StaffFactory(role=roles.RISK_OFFICER)
    approval_request_approve(
        request=pending_sign_off_of(StandingTopUpInstruction.objects.get(pk=instruction["id"])), actor=signer
    )
    read = portal.get(f"/api/v1/standing-top-up-instructions/{instruction['id']}/").json()
    assert (read["status"], read["signed_off_by"]) == ("active", signer.username)

    revoked = portal.post(
        f"/api/v1/standing-top-up-instructions/{instruction['id']}/revoke/",
        {"reason": "no more"},
        format="json",
    )
    assert revoked.status_code == 200, revoked.json()
    assert (revoked.json()["status"], revoked.json()["revoked_by"], revoked.json()["revoke_reason"]) == (
        "revoked",
        portal.user.username,
        "no more",
    )
    again = portal.post(
        f"/api/v1/standing-top-up-instructions/{instruction['id']}/revoke/", {}, format="json"
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_transition")


def test_a_client_user_asks_and_revokes_only_for_their_own_client(facility, portal, staff_client):
    other = facility_with_pool()
    with writes_nothing():
        response = portal.post(
            "/api/v1/standing-top-up-instructions/", {"client": other.client_id}, format="json"
        )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["client"] == [
        f'Invalid pk "{other.client_id}" - object does not exist.'
    ]
    theirs = staff_client(roles.CREDIT_OFFICER).post(
        "/api/v1/standing-top-up-instructions/", {"client": other.client_id}, format="json"
    )
    assert theirs.status_code == 201
    with writes_nothing():
        response = portal.post(
            f"/api/v1/standing-top-up-instructions/{theirs.json()['id']}/revoke/", format="json"
        )
    assert response.status_code == 404
    assert StandingTopUpInstruction.objects.get().status == InstructionStatus.PENDING_SIGN_OFF


def test_systems_read_instructions_but_never_ask_or_revoke(facility, portal, key_client):
    instruction = portal.post(
        "/api/v1/standing-top-up-instructions/", {"client": facility.client_id}, format="json"
    )
    lending = key_client("lending")
    listed = lending.get("/api/v1/standing-top-up-instructions/")
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == [instruction.json()["id"]]
    assert key_client("read").get("/api/v1/standing-top-up-instructions/").status_code == 200
    prices_only = key_client("prices").get("/api/v1/standing-top-up-instructions/")
    assert (prices_only.status_code, prices_only.json()["error"]["code"]) == (403, "scope_missing")
    assert (
        key_client("lending").get("/api/v1/drawdowns/").status_code == 403
    )  # the exception is for this resource
    with writes_nothing():
        asked = lending.post(
            "/api/v1/standing-top-up-instructions/", {"client": facility.client_id}, format="json"
        )
        revoke = lending.post(f"/api/v1/standing-top-up-instructions/{instruction.json()['id']}/revoke/")
    for response in (asked, revoke):
        assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")
        assert "Only a named person may" in response.json()["error"]["message"]


def test_staff_need_the_permission_to_ask(facility, staff_client):
    operations = staff_client(roles.OPERATIONS)
    with writes_nothing():
        response = operations.post(
            "/api/v1/standing-top-up-instructions/", {"client": facility.client_id}, format="json"
        )
    assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")


@pytest.mark.parametrize(
    ("order", "status", "code"),
    [
        (["HKD"], 400, "invalid"),
        (["DOGE"], 400, "invalid"),
        (["BTC", "BTC"], 400, "invalid"),
        (["not a symbol!"], 400, "invalid"),
    ],
)
def test_a_bad_asset_order_is_refused(facility, portal, order, status, code):
    with writes_nothing():
        response = portal.post(
            "/api/v1/standing-top-up-instructions/",
            {"client": facility.client_id, "asset_order": order},
            format="json",
        )
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_an_ineligible_asset_and_a_second_pending_request_are_refused(facility, portal, market):
    market["0700.HK"].eligible = False
    market["0700.HK"].save(update_fields=["eligible"])
    url = "/api/v1/standing-top-up-instructions/"
    refused = portal.post(url, {"client": facility.client_id, "asset_order": ["0700.HK"]}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "asset_not_eligible")
    assert portal.post(url, {"client": facility.client_id}, format="json").status_code == 201
    with writes_nothing():
        second = portal.post(url, {"client": facility.client_id}, format="json")
    assert (second.status_code, second.json()["error"]["code"]) == (409, "duplicate_pending_request")


def test_asking_is_idempotent(facility, portal):
    url, body = "/api/v1/standing-top-up-instructions/", {"client": facility.client_id}
    first = portal.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="ask-1")
    again = portal.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="ask-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert StandingTopUpInstruction.objects.count() == 1


# --- automatic top-ups ---------------------------------------------------------------------------------


def test_the_client_reads_what_an_automatic_top_up_moved(facility, portal, custody, key_client):
    for symbol, quantity in (("HKD", "20000.00"), ("ETH", "10")):
        body = {"client": facility.client_id, "kind": "received", "asset": symbol, "quantity": quantity}
        custody.post("/api/v1/custody-movements/", {**body, "external_reference": symbol}, format="json")
    asked = portal.post(
        "/api/v1/standing-top-up-instructions/",
        {"client": facility.client_id, "asset_order": ["ETH"]},
        format="json",
    )
    approval_request_approve(
        request=pending_sign_off_of(StandingTopUpInstruction.objects.get(pk=asked.json()["id"])),
        actor=StaffFactory(role=roles.CREDIT_OFFICER),
    )
    price("BTC", "80000")
    monitoring_cycle_run(symbols=["BTC"], trigger="test")

    (top_up,) = portal.get("/api/v1/automatic-top-ups/").json()["results"]
    call = MarginCall.objects.get()
    assert (top_up["outcome"], top_up["trigger"], top_up["margin_call"]) == (
        "reached_target",
        "margin_call",
        call.pk,
    )
    assert top_up["transfers"] == [
        {"asset": "HKD", "quantity": "20000", "market_value": "20000.00"},
        {"asset": "ETH", "quantity": "3.882783814102564103", "market_value": "121142.86"},
    ]
    assert (top_up["ratio_before"], top_up["ratio_after"]) == ("1.06250000", "0.85000000")
    assert (top_up["still_due_top_up"], top_up["still_due_repayment"], top_up["currency"]) == (
        "0.00",
        "0.00",
        "HKD",
    )
    assert top_up["made_by"] == "system"
    assert portal.get(f"/api/v1/margin-calls/{call.pk}/").json()["status"] == "cured"
    assert key_client("read").get(f"/api/v1/automatic-top-ups/{top_up['id']}/").json() == top_up
    assert portal.get("/api/v1/automatic-top-ups/?outcome=partial").json()["results"] == []
