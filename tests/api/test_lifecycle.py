"""Lifecycle writes through the API: facilities opened, suspended, resumed and closed, their limits changed
four-eyes; margin policies created and changed (thresholds four-eyes); credit profiles created; the cure
amounts on every facility read above target."""

import uuid
from decimal import Decimal

import pytest

from accounts.audit import SYSTEM
from accounts.models import ApprovalRequest, AuditEvent
from accounts.roles import CREDIT_OFFICER, RISK_OFFICER
from accounts.services import approval_request_approve
from financing.enums import FacilityStatus
from financing.lending.services import drawdown_create, repayment_create
from financing.margin_calls.services import margin_call_issue
from financing.models import Facility, MarginPolicy
from financing.selectors import facility_valuation
from tests.accounts.factories import ClientFactory, CreditProfileFactory
from tests.collateral.factories import price, standard_market
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db


def post(client, path, body, key=None):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


# --- facilities ---


def test_a_key_with_the_admin_scope_opens_a_facility_once_per_idempotency_key(key_client):
    standard_market()
    client = ClientFactory()
    CreditProfileFactory(client=client)
    api = key_client("admin", "read", name="crm")
    body = {"client": client.pk, "limit": "2000000.00", "rate_kind": "fixed", "fixed_rate": "0.065"}
    response = post(api, "/api/v1/facilities/", body, key="open-1")
    assert response.status_code == 201, response.json()
    opened = response.json()
    assert opened["limit"] == "2000000.00"
    assert opened["fixed_rate"] == "0.065"
    assert opened["status"] == "active"
    assert opened["margin_ratio"] == "0.00000000"
    again = post(api, "/api/v1/facilities/", body, key="open-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Facility.objects.filter(client=client).count() == 1
    event = AuditEvent.objects.get(action="facility.opened", target_id=str(opened["id"]))
    assert event.actor_label == "api-key:crm"
    # A second open facility is refused in words, and nothing is written.
    refused = post(api, "/api/v1/facilities/", body)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "facility_exists"
    assert Facility.objects.filter(client=client).count() == 1


def test_a_floating_rate_facility_needs_its_base_rate_and_takes_a_policy(key_client):
    client = ClientFactory()
    policy = MarginPolicy.objects.create(name="Strict")
    api = key_client("admin")
    body = {"client": client.pk, "limit": "1000000.00", "rate_kind": "floating", "spread": "0.025"}
    refused = post(api, "/api/v1/facilities/", body)
    assert refused.status_code == 400
    assert "base rate" in refused.json()["error"]["message"]
    assert not Facility.objects.filter(client=client).exists()
    opened = post(api, "/api/v1/facilities/", {**body, "base_rate_name": "HIBOR-1M", "policy": policy.pk})
    assert opened.status_code == 201, opened.json()
    assert opened.json()["base_rate_name"] == "HIBOR-1M"
    assert opened.json()["spread"] == "0.025"
    assert opened.json()["policy"] == "Strict"


def test_opening_a_facility_needs_the_admin_scope(key_client):
    client = ClientFactory()
    response = post(
        key_client("lending", "read"), "/api/v1/facilities/", {"client": client.pk, "limit": "1.00"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "scope_missing"
    assert not Facility.objects.exists()


def test_a_facility_limit_changes_only_when_a_second_officer_approves(key_client, staff_client):
    facility = facility_with_pool(limit="1000000.00")
    refused = post(
        key_client("admin"), f"/api/v1/facilities/{facility.pk}/limit-change-requests/", {"limit": "2.00"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "staff_session_required"
    maker = staff_client(CREDIT_OFFICER)
    asked = post(maker, f"/api/v1/facilities/{facility.pk}/limit-change-requests/", {"limit": "3000000.00"})
    assert asked.status_code == 201, asked.json()
    assert asked.json()["kind"] == "facility_limit"
    assert asked.json()["current"] == {"limit": "1000000.00"}
    assert asked.json()["proposed"] == {"limit": "3000000.00"}
    facility.refresh_from_db()
    assert facility.limit.amount == Decimal("1000000.00")  # not yet
    twice = post(maker, f"/api/v1/facilities/{facility.pk}/limit-change-requests/", {"limit": "4000000.00"})
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "duplicate_pending_request"
    request = ApprovalRequest.objects.get(pk=asked.json()["id"])
    with pytest.raises(Exception, match="four-eyes"):
        approval_request_approve(request=request, actor=maker.user)
    checker = staff_client(CREDIT_OFFICER)
    approval_request_approve(request=request, actor=checker.user)
    facility.refresh_from_db()
    assert facility.limit.amount == Decimal("3000000.00")
    event = AuditEvent.objects.get(action="facility.limit_changed", target_id=str(facility.pk))
    assert event.after["approval_request"] == request.pk


def test_suspend_resume_and_close_with_their_refusals_in_words(key_client):
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="100000.00", actor=SYSTEM)
    api = key_client("admin", "lending", "read")
    base = f"/api/v1/facilities/{facility.pk}"

    suspended = post(api, f"{base}/suspend/", {"reason": "annual review overdue"})
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended"
    event = AuditEvent.objects.filter(action="facility.status_changed", target_id=str(facility.pk)).first()
    assert event.after == {"status": "suspended", "reason": "annual review overdue"}
    refused = post(api, "/api/v1/drawdowns/", {"facility": facility.pk, "amount": "1000.00"})
    assert refused.status_code == 422
    assert post(api, f"{base}/suspend/", {}).json()["error"]["code"] == "no_change"
    assert post(api, f"{base}/resume/", {}).json()["status"] == "active"

    closing = post(api, f"{base}/close/", {})
    assert closing.status_code == 409
    assert closing.json()["error"]["code"] == "facility_has_debt"
    assert "still owes HK$100,0" in closing.json()["error"]["message"]
    facility.refresh_from_db()
    assert facility.status == FacilityStatus.ACTIVE

    debt = facility_valuation(facility).debt.total
    repayment_create(facility=facility, amount=debt, actor=SYSTEM)
    closed = post(api, f"{base}/close/", {})
    assert closed.status_code == 200, closed.json()
    assert closed.json()["status"] == "closed"
    after = post(api, f"{base}/resume/", {})
    assert after.status_code == 409
    assert after.json()["error"]["code"] == "invalid_transition"


def test_a_facility_with_an_open_margin_call_is_not_closed(key_client):
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"})  # LV 312,000
    drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    price("BTC", "60000")  # LV 187,200: R ≈ 134%
    call = margin_call_issue(facility=facility, actor=SYSTEM)
    response = post(key_client("admin"), f"/api/v1/facilities/{facility.pk}/close/", {})
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "open_margin_call",
        "message": f"{facility.reference} has an open margin call (#{call.pk}); it can be closed once the call "
        "is closed.",
        "details": {"margin_call": call.pk},
    }


def test_the_facility_read_shows_the_cure_amounts_whenever_the_ratio_is_above_target(key_client):
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"})  # LV 312,000; target 85%
    drawdown_create(facility=facility, amount="200000.00", actor=SYSTEM)
    api = key_client("read")
    below = api.get(f"/api/v1/facilities/{facility.pk}/").json()
    assert (below["repayment_to_target"], below["top_up_to_target"]) == ("0.00", "0.00")
    price("BTC", "80000")  # LV 249,600: R ≈ 80%, under target
    price("BTC", "70000")  # LV 218,400: R ≈ 91.6%, above target, below a margin call
    read = api.get(f"/api/v1/facilities/{facility.pk}/").json()
    assert read["open_margin_call"] is None
    debt, margin_value = Decimal(read["debt"]), Decimal(read["margin_value"])
    repayment, top_up = Decimal(read["repayment_to_target"]), Decimal(read["top_up_to_target"])
    assert repayment > 0
    assert top_up > 0
    assert (debt - repayment) / margin_value <= Decimal("0.85")
    assert debt / (margin_value + top_up) <= Decimal("0.85")
    assert (debt - repayment + Decimal("0.02")) / margin_value > Decimal("0.85")  # not more than needed
    listed = api.get(f"/api/v1/facilities/?client={facility.client_id}").json()["results"][0]
    assert listed["repayment_to_target"] == read["repayment_to_target"]


# --- margin policies ---


def test_margin_policies_are_created_and_their_terms_changed_with_the_risk_scope(key_client):
    api = key_client("risk", "read", name="risk-engine")
    created = post(
        api,
        "/api/v1/margin-policies/",
        {"name": "Crypto strict", "max_advance": "0.70", "warning": "0.80", "margin_call": "0.90",
         "forced_sale": "1.05", "target": "0.70", "cure_business_days": 2},
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    policy = created.json()
    assert (policy["margin_call"], policy["is_default"], policy["pending_change"]) == ("0.9", False, None)
    assert AuditEvent.objects.filter(action="margin_policy.created", target_id=str(policy["id"])).exists()
    not_rising = post(
        api, "/api/v1/margin-policies/", {"name": "Bad", "warning": "0.95", "margin_call": "0.90"}
    )
    assert not_rising.status_code == 400
    assert "Thresholds must rise" in not_rising.json()["error"]["message"]
    assert not MarginPolicy.objects.filter(name="Bad").exists()
    default = post(api, "/api/v1/margin-policies/", {"name": "New default", "is_default": True})
    assert default.status_code == 403  # a change request makes a policy the default, four-eyes
    assert default.json()["error"]["code"] == "four_eyes_required"
    assert not MarginPolicy.objects.filter(name="New default").exists()

    changed = api.patch(f"/api/v1/margin-policies/{policy['id']}/", {"cure_business_days": 3}, format="json")
    assert changed.status_code == 200
    assert changed.json()["cure_business_days"] == 3
    thresholds = api.patch(f"/api/v1/margin-policies/{policy['id']}/", {"margin_call": "0.95"}, format="json")
    assert thresholds.status_code == 403
    assert thresholds.json()["error"]["code"] == "four_eyes_required"
    assert MarginPolicy.objects.get(pk=policy["id"]).margin_call == Decimal("0.90")
    assert post(key_client("admin"), "/api/v1/margin-policies/", {"name": "X"}).status_code == 403


def test_a_threshold_change_is_a_four_eyes_request_of_risk_officers(key_client, staff_client):
    policy = MarginPolicy.objects.create(name="House terms")
    path = f"/api/v1/margin-policies/{policy.pk}/change-requests/"
    assert post(key_client("risk"), path, {"margin_call": "1.05"}).json()["error"]["code"] == (
        "staff_session_required"
    )
    maker = staff_client(RISK_OFFICER)
    refused = post(maker, path, {"margin_call": "1.30"})  # above the forced-sale threshold of 1.20
    assert refused.status_code == 400
    assert "Thresholds must rise" in refused.json()["error"]["message"]
    asked = post(maker, path, {"margin_call": "1.05", "forced_sale": "1.25", "reason": "wider band"})
    assert asked.status_code == 201, asked.json()
    assert asked.json()["proposed"] == {"margin_call": "1.05", "forced_sale": "1.25"}
    read = maker.get(f"/api/v1/margin-policies/{policy.pk}/").json()
    assert read["pending_change"] == {"id": asked.json()["id"], "proposed": asked.json()["proposed"]}
    credit_officer = staff_client(CREDIT_OFFICER)
    request = ApprovalRequest.objects.get(pk=asked.json()["id"])
    with pytest.raises(Exception, match="may not decide"):
        approval_request_approve(request=request, actor=credit_officer.user)
    approval_request_approve(request=request, actor=staff_client(RISK_OFFICER).user)
    policy.refresh_from_db()
    assert (policy.margin_call, policy.forced_sale) == (Decimal("1.05"), Decimal("1.25"))
    event = AuditEvent.objects.get(action="margin_policy.saved", target_id=str(policy.pk))
    assert event.after["approval_request"] == request.pk


# --- credit profiles ---


def test_a_credit_profile_is_created_with_no_credit(key_client):
    client = ClientFactory()
    api = key_client("admin", "read")
    body = {"client": client.pk, "internal_rating": "A", "next_review_on": "2027-06-30"}
    created = post(api, "/api/v1/credit-profiles/", body)
    assert created.status_code == 201, created.json()
    assert created.json()["credit_limit"] == "0.00"
    assert AuditEvent.objects.filter(action="credit_profile.created").exists()
    twice = post(api, "/api/v1/credit-profiles/", body)
    assert twice.status_code == 400
    assert twice.json()["error"]["code"] == "duplicate_credit_profile"
