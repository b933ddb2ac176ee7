"""The admin as a credit officer uses it: lists, the approval queue and its actions."""

import pytest
from django.urls import reverse
from djmoney.money import Money

from accounts import services
from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest, Client, CreditProfile
from tests.accounts.factories import ClientFactory, CreditProfileFactory, StaffFactory
from tests.helpers import login_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer(client):
    user = StaffFactory(username="officer", role="Credit officer")
    login_as(client, user)
    return user


@pytest.mark.parametrize(
    "role", ["Credit officer", "Risk officer", "Operations", "Compliance", "Administrator"]
)
@pytest.mark.parametrize(
    "page",
    [
        "admin:index",
        "admin:accounts_client_changelist",
        "admin:accounts_creditprofile_changelist",
        "admin:accounts_approvalrequest_changelist",
        "admin:accounts_auditevent_changelist",
    ],
)
def test_every_role_reads_the_lists(client, role, page):
    CreditProfileFactory()
    login_as(client, StaffFactory(role=role))
    assert client.get(reverse(page)).status_code == 200


def test_creating_a_client_in_the_admin_goes_through_the_service(client, officer):
    response = client.post(
        reverse("admin:accounts_client_add"),
        {
            "name": "Admin Made Ltd",
            "kind": "corporation",
            "email": "",
            "kyc_status": "approved",
            "pi_portfolio_value_0": "9000000.00",
            "pi_portfolio_value_1": "HKD",
            "pi_total_assets_0": "",
            "pi_total_assets_1": "HKD",
            "pi_assessed_on": "2026-11-01",
            "pi_expires_on": "",
            "credit_profile-TOTAL_FORMS": "0",
            "credit_profile-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Client.objects.get(name="Admin Made Ltd")
    assert created.reference.startswith("C")
    # The KYC status and evidence typed at onboarding are a four-eyes request, not written by the form.
    assert (created.kyc_status, created.pi_portfolio_value) == ("pending", None)
    (asked,) = ApprovalRequest.objects.filter(kind="client_assessment", status="pending")
    assert asked.target_id == str(created.pk)
    assert asked.proposed["kyc_status"] == "approved"
    assert asked.proposed["pi_portfolio_value"] == "9000000.00"
    services.approval_request_approve(request=asked, actor=StaffFactory(role="Credit officer"))
    created.refresh_from_db()
    assert (created.kyc_status, created.pi_portfolio_value) == ("approved", Money("9000000.00", "HKD"))


def test_a_negative_portfolio_is_refused_in_the_admin(client, officer):
    response = client.post(
        reverse("admin:accounts_client_add"),
        {
            "name": "Negative Ltd",
            "kind": "corporation",
            "kyc_status": "approved",
            "pi_portfolio_value_0": "-1",
            "pi_portfolio_value_1": "HKD",
            "pi_total_assets_1": "HKD",
            "credit_profile-TOTAL_FORMS": "0",
            "credit_profile-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert not Client.objects.filter(name="Negative Ltd").exists()
    assert "Ensure this value is greater than or equal to" in response.content.decode()


def test_requesting_a_limit_in_the_admin_creates_a_pending_request(client, officer):
    profile = CreditProfileFactory(credit_limit=Money("1000000", "HKD"))
    response = client.post(
        reverse("admin:accounts_creditprofile_change", args=[profile.pk]),
        {
            "internal_rating": profile.internal_rating,
            "next_review_on": profile.next_review_on.isoformat(),
            "requested_credit_limit": "3000000.00",
            "request_reason": "more collateral pledged",
        },
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.credit_limit == Money("1000000.00", "HKD")
    request = ApprovalRequest.objects.get()
    assert request.proposed == {"credit_limit": "3000000.00"}
    assert request.requested_by == officer


def test_the_approval_queue_refuses_self_approval_and_lets_a_colleague_approve(client, officer):
    profile = CreditProfileFactory(credit_limit=Money("1000000", "HKD"))
    request = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=officer)
    changelist = reverse("admin:accounts_approvalrequest_changelist")

    response = client.post(changelist, {"action": "approve", "_selected_action": [request.pk]}, follow=True)
    assert "a second member of staff must decide it" in response.content.decode()
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING

    colleague = StaffFactory(username="colleague", role="Credit officer")
    login_as(client, colleague)
    response = client.post(changelist, {"action": "approve", "_selected_action": [request.pk]}, follow=True)
    assert "1 request(s) approved" in response.content.decode()
    profile.refresh_from_db()
    assert profile.credit_limit == Money("2000000.00", "HKD")


def test_compliance_cannot_decide_requests(client, officer):
    profile = CreditProfileFactory()
    request = services.credit_limit_change_request(profile=profile, credit_limit="12345678", actor=officer)
    login_as(client, StaffFactory(role="Compliance"))
    response = client.post(
        reverse("admin:accounts_approvalrequest_changelist"),
        {"action": "approve", "_selected_action": [request.pk]},
        follow=True,
    )
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING
    assert CreditProfile.objects.get(pk=profile.pk).credit_limit != Money("12345678", "HKD")
    assert response.status_code == 200


def test_client_list_shows_eligibility(client, officer):
    ClientFactory(name="Eligible Co")
    response = client.get(reverse("admin:accounts_client_changelist"))
    assert "Eligible Co" in response.content.decode()
