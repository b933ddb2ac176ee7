"""An integrating engineer's whole client, through the API only: onboarding to eligible, a credit limit, a
margin policy, a facility, collateral, drawdowns, a price shock, a margin call and its cure. Where the rules
ask for four eyes, a second member of staff approves in the service layer, as the admin or the console
does; the margin sweep runs as its schedule runs it."""

import datetime
import uuid
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import ApprovalRequest
from accounts.roles import CREDIT_OFFICER, RISK_OFFICER
from accounts.services import approval_request_approve
from collateral.enums import PriceStatus
from collateral.models import Price
from collateral.services import price_confirm
from financing.monitoring.cycle import monitoring_cycle_run
from tests.collateral.factories import standard_market

pytestmark = pytest.mark.django_db


class Driver:
    """The broker's systems: a key for each (CRM, risk engine, order management and custody) and one
    credit officer's session for the four-eyes requests a person must make."""

    def __init__(self, key_client, staff_client):
        self.crm = key_client("admin", "read", name="crm")
        self.risk = key_client("risk", "read", name="risk-engine")
        self.oms = key_client("lending", "collateral", "prices", "read", name="oms")
        self.officer = staff_client(CREDIT_OFFICER)
        self.risk_officer = staff_client(RISK_OFFICER)

    @staticmethod
    def post(client: APIClient, path: str, body: dict, expect: int = 201) -> dict:
        response = client.post(f"/api/v1/{path}", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        assert response.status_code == expect, (path, response.status_code, response.json())
        return response.json()

    def get(self, path: str) -> dict:
        response = self.oms.get(f"/api/v1/{path}")
        assert response.status_code == 200, (path, response.json())
        return response.json()


def approve(request_id: int, checker) -> None:
    """The second person, in the admin or the console: the same service."""
    approval_request_approve(request=ApprovalRequest.objects.get(pk=request_id), actor=checker)


def test_a_client_from_onboarding_to_a_cured_margin_call_through_the_api(key_client, staff_client):
    standard_market()  # the platform's assets and prices, as the operators set them up
    api = Driver(key_client, staff_client)
    credit_checker = staff_client(CREDIT_OFFICER).user
    today = datetime.date.today()

    # 1. Onboarding: the client's record, then its assessment (four-eyes) until it is eligible.
    client = api.post(api.crm, "clients/", {"name": "Harbour Trading Ltd", "kind": "corporation"})
    assert client["eligible"] is False
    assert client["eligibility_reasons"]
    asked = api.post(
        api.officer,
        f"clients/{client['id']}/assessment-change-requests/",
        {
            "kyc_status": "approved",
            "pi_portfolio_value": "20000000.00",
            "pi_total_assets": "60000000.00",
            "pi_assessed_on": today.isoformat(),
            "reason": "KYC file complete; audited accounts",
        },
    )
    approve(asked["id"], credit_checker)
    client = api.get(f"clients/{client['id']}/")
    assert client["eligible"] is True, client["eligibility_reasons"]

    # 2. A credit profile, and its limit (four-eyes).
    profile = api.post(
        api.crm,
        "credit-profiles/",
        {"client": client["id"], "internal_rating": "A", "next_review_on": (today + datetime.timedelta(days=180)).isoformat()},
    )  # fmt: skip
    assert profile["credit_limit"] == "0.00"
    asked = api.post(
        api.officer, f"credit-profiles/{profile['id']}/limit-change-requests/", {"credit_limit": "3000000.00"}
    )
    approve(asked["id"], credit_checker)
    assert api.get(f"credit-profiles/{profile['id']}/")["credit_limit"] == "3000000.00"

    # 3. A margin policy of its own, and the facility.
    policy = api.post(
        api.risk,
        "margin-policies/",
        {"name": "Harbour terms", "max_advance": "0.80", "warning": "0.90", "margin_call": "1.00",
         "forced_sale": "1.30", "target": "0.80", "cure_business_days": 2},
    )  # fmt: skip
    facility = api.post(
        api.crm,
        "facilities/",
        {"client": client["id"], "limit": "2000000.00", "rate_kind": "fixed", "fixed_rate": "0.065",
         "policy": policy["id"]},
    )  # fmt: skip
    assert (facility["status"], facility["policy"], facility["debt"]) == ("active", "Harbour terms", "0.00")

    # 4. Collateral from custody: Tencent and HSBC.
    for symbol, quantity, reference in (("0700.HK", "3000", "CUST-1"), ("0005.HK", "8000", "CUST-2")):
        api.post(
            api.oms,
            "collateral-movements/",
            {"client": client["id"], "kind": "deposit", "asset": symbol, "quantity": quantity,
             "external_reference": reference},
        )  # fmt: skip
    facility = api.get(f"facilities/{facility['id']}/")
    margin_value = Decimal(facility["margin_value"])
    assert margin_value > 0
    assert Decimal(facility["available_to_draw"]) == (margin_value * Decimal("0.80")).quantize(
        Decimal("0.01")
    )

    # 5. Drawdowns: one within max advance, then one past it, refused in words.
    first = (margin_value * Decimal("0.70")).quantize(Decimal("1"))
    drawn = api.post(api.oms, "drawdowns/", {"facility": facility["id"], "amount": f"{first}.00"})
    assert Decimal(drawn["margin_ratio_after"]) < Decimal("0.80")
    refused = api.post(
        api.oms, "drawdowns/", {"facility": facility["id"], "amount": f"{first}.00"}, expect=422
    )
    assert refused["error"]["code"] == "max_advance_exceeded"
    facility = api.get(f"facilities/{facility['id']}/")
    assert (facility["margin_status"], facility["repayment_to_target"]) == ("ok", "0.00")

    # 6. A price shock: both stocks fall 35%. Far outside the band, so each is held until a second person
    #    (a risk officer) confirms it; then the sweep values the book and issues the call.
    recorded = api.post(
        api.oms,
        "prices/",
        {"source": "market-data", "prices": [{"symbol": "0700.HK", "price": "260"}, {"symbol": "0005.HK", "price": "65"}]},
    )  # fmt: skip
    assert [held["symbol"] for held in recorded["held"]] == ["0700.HK", "0005.HK"]
    for held in Price.objects.filter(status=PriceStatus.UNCONFIRMED):
        price_confirm(price=held, actor=api.risk_officer.user)
    monitoring_cycle_run()

    # 7. The margin call, with its cure amounts on the facility too.
    facility = api.get(f"facilities/{facility['id']}/")
    ratio = Decimal(facility["margin_ratio"])
    assert Decimal("1.00") < ratio < Decimal("1.30")
    assert facility["margin_status"] == "margin_call"
    call = api.get(f"margin-calls/{facility['open_margin_call']}/")
    assert call["status"] == "issued"
    assert facility["repayment_to_target"] == call["repayment_due"]
    assert facility["top_up_to_target"] == call["top_up_due"]  # Tencent's concentration cut binds: exact cash
    events = api.get(f"events/?type=margin_call.issued&client={client['id']}")["results"]
    assert [event["subject_id"] for event in events] == [str(call["id"])]
    refused = api.post(api.oms, "drawdowns/", {"facility": facility["id"], "amount": "1000.00"}, expect=422)
    assert refused["error"]["code"] == "open_margin_call"
    refused = api.post(api.crm, f"facilities/{facility['id']}/close/", {}, expect=409)
    assert refused["error"]["code"] == "open_margin_call"

    # 8. The cure: the client repays what the call asks; the call is cured, the ratio back at target.
    api.post(api.oms, "repayments/", {"facility": facility["id"], "amount": call["repayment_due"]})
    assert api.get(f"margin-calls/{call['id']}/")["status"] == "cured"
    facility = api.get(f"facilities/{facility['id']}/")
    assert Decimal(facility["margin_ratio"]) <= Decimal("0.80")
    assert facility["open_margin_call"] is None
    assert (facility["repayment_to_target"], facility["top_up_to_target"]) == ("0.00", "0.00")
    cured = api.get(f"events/?type=margin_call.cured&client={client['id']}")["results"]
    assert len(cured) == 1
