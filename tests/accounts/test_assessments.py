"""A client's KYC status and professional-investor evidence change only through a four-eyes approval: refused
directly (service, admin, API) with nothing written, and bounded so no assessment expires in 2999."""

import datetime

import pytest
from django.urls import reverse
from djmoney.money import Money
from rest_framework.test import APIClient

from accounts import services
from accounts.enums import ApprovalStatus, KycStatus
from accounts.exceptions import FourEyesRequired, FourEyesViolation
from accounts.models import ApprovalRequest, AuditEvent, Client
from api.services import api_key_create
from core.exceptions import InvalidInput, PermissionRefused
from tests.accounts.factories import ClientFactory, StaffFactory
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

TODAY = datetime.date.today()


@pytest.fixture
def maker():
    return StaffFactory(role="Credit officer")


@pytest.fixture
def checker():
    return StaffFactory(role="Credit officer")


@pytest.mark.parametrize(
    "change",
    [
        {"kyc_status": KycStatus.APPROVED},
        {"pi_expires_on": datetime.date(2999, 1, 1)},
        {"pi_assessed_on": TODAY},
        {"pi_portfolio_value": "99000000.00"},
        {"pi_total_assets": None},
    ],
)
def test_a_direct_change_of_kyc_or_evidence_is_refused_and_writes_nothing(maker, change):
    client = ClientFactory(kyc_status=KycStatus.PENDING)
    with writes_nothing(), pytest.raises(FourEyesRequired, match="four-eyes request"):
        services.client_update(client=client, actor=maker, **change)


def test_an_assessment_change_takes_effect_only_when_a_second_person_approves(maker, checker):
    client = ClientFactory(kyc_status=KycStatus.PENDING, pi_portfolio_value=Money("5000000", "HKD"))
    request = services.client_assessment_change_request(
        client=client, actor=maker, reason="KYC file complete", kyc_status=KycStatus.APPROVED,
        pi_portfolio_value="9500000", pi_assessed_on=TODAY,
    )  # fmt: skip
    assert request.proposed == {
        "kyc_status": "approved",
        "pi_portfolio_value": "9500000.00",
        "pi_assessed_on": TODAY.isoformat(),
        "pi_expires_on": (TODAY + datetime.timedelta(days=365)).isoformat(),
    }
    client.refresh_from_db()
    assert client.kyc_status == KycStatus.PENDING
    with writes_nothing(), pytest.raises(FourEyesViolation):
        services.approval_request_approve(request=request, actor=maker)
    services.approval_request_approve(request=request, actor=checker)
    client.refresh_from_db()
    assert client.kyc_status == KycStatus.APPROVED
    assert client.pi_portfolio_value == Money("9500000.00", "HKD")
    assert client.pi_expires_on == TODAY + datetime.timedelta(days=365)
    event = AuditEvent.objects.get(action="client.assessment_changed")
    assert event.actor == checker
    assert event.before["kyc_status"] == "pending"
    assert event.after["approval_request"] == request.pk


def test_who_may_decide_an_assessment_change(maker):
    client = ClientFactory(kyc_status=KycStatus.PENDING)
    request = services.client_assessment_change_request(
        client=client, actor=maker, kyc_status=KycStatus.APPROVED
    )
    for role in ("Operations", "Compliance", "Risk officer"):
        staff = StaffFactory(role=role)
        with writes_nothing(), pytest.raises(PermissionRefused):
            services.approval_request_approve(request=request, actor=staff)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pi_expires_on": datetime.date(2999, 1, 1)}, "expires on .* at the latest"),
        ({"pi_assessed_on": TODAY - datetime.timedelta(days=10), "pi_expires_on": datetime.date(2999, 1, 1)},
         "at the latest"),
        ({"pi_assessed_on": TODAY + datetime.timedelta(days=1)}, "cannot be dated in the future"),
        ({"pi_expires_on": TODAY - datetime.timedelta(days=400)}, "cannot expire before it is made"),
        ({"kyc_status": "certainly"}, "is not a KYC status"),
        ({"pi_portfolio_value": "-1"}, "pi_portfolio_value"),
        ({"credit_limit": "1"}, "not credit_limit"),
        ({}, "proposes some of"),
    ],
)  # fmt: skip
def test_a_bad_assessment_is_refused_when_asked_for(maker, change, message):
    client = ClientFactory(pi_assessed_on=TODAY - datetime.timedelta(days=30))
    with writes_nothing(), pytest.raises(InvalidInput, match=message):
        services.client_assessment_change_request(client=client, actor=maker, **change)


def test_asking_for_the_assessment_the_client_has_is_refused(maker):
    client = ClientFactory(kyc_status=KycStatus.APPROVED)
    with writes_nothing(), pytest.raises(InvalidInput, match="already has this assessment"):
        services.client_assessment_change_request(client=client, actor=maker, kyc_status=KycStatus.APPROVED)


def test_a_new_client_cannot_be_onboarded_with_an_assessment_expiring_in_2999(maker):
    with writes_nothing(), pytest.raises(InvalidInput, match="at the latest"):
        services.client_create(
            actor=maker, name="Forever Ltd", kind="corporation", pi_assessed_on=TODAY,
            pi_expires_on=datetime.date(2999, 1, 1),
        )  # fmt: skip


# --- the admin ---------------------------------------------------------------------------------


def test_the_client_page_asks_for_an_assessment_change_and_changes_nothing_itself(client, maker):
    login_as(client, maker)
    customer = ClientFactory(kyc_status=KycStatus.PENDING)
    response = client.post(
        reverse("admin:accounts_client_change", args=[customer.pk]),
        {
            "name": customer.name,
            "kind": customer.kind,
            "email": customer.email,
            "kyc_status": "approved",  # not a field of the page: ignored
            "pi_expires_on": "2999-01-01",  # nor this
            "new_kyc_status": "approved",
            "assessment_reason": "documents checked",
            "credit_profile-TOTAL_FORMS": "0",
            "credit_profile-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    customer.refresh_from_db()
    assert customer.kyc_status == KycStatus.PENDING
    assert customer.pi_expires_on != datetime.date(2999, 1, 1)
    request = ApprovalRequest.objects.get(kind="client_assessment")
    assert (request.proposed, request.requested_by, request.reason) == (
        {"kyc_status": "approved"},
        maker,
        "documents checked",
    )


def test_the_client_page_refuses_an_expiry_in_2999_and_writes_nothing(client, maker):
    login_as(client, maker)
    customer = ClientFactory()
    with writes_nothing():
        response = client.post(
            reverse("admin:accounts_client_change", args=[customer.pk]),
            {
                "name": "Renamed too",
                "kind": customer.kind,
                "email": customer.email,
                "new_pi_expires_on": "2999-01-01",
                "credit_profile-TOTAL_FORMS": "0",
                "credit_profile-INITIAL_FORMS": "0",
            },
            follow=True,
        )
    assert "at the latest" in response.content.decode()
    assert Client.objects.get(pk=customer.pk).name == customer.name


# --- the API -----------------------------------------------------------------------------------


@pytest.fixture
def admin_key():
    _, raw_key = api_key_create(
        name="crm", scopes=["read", "admin"], actor=StaffFactory(role="Administrator")
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return api


@pytest.mark.parametrize(
    "body",
    [{"pi_expires_on": "2999-01-01"}, {"kyc_status": "approved"}, {"name": "New", "pi_total_assets": None}],
)
def test_an_admin_key_cannot_patch_kyc_or_evidence(admin_key, body):
    client = ClientFactory(kyc_status=KycStatus.PENDING)
    with writes_nothing():
        response = admin_key.patch(f"/api/v1/clients/{client.pk}/", body, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "four_eyes_required"


def test_an_api_key_cannot_ask_for_an_assessment_change(admin_key):
    client = ClientFactory(kyc_status=KycStatus.PENDING)
    with writes_nothing():
        response = admin_key.post(
            f"/api/v1/clients/{client.pk}/assessment-change-requests/",
            {"kyc_status": "approved"},
            format="json",
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "staff_session_required"


def test_staff_ask_for_an_assessment_change_through_the_api(maker, checker):
    client = ClientFactory(kyc_status=KycStatus.PENDING)
    api = APIClient()
    login_as(api, maker)
    response = api.post(
        f"/api/v1/clients/{client.pk}/assessment-change-requests/",
        {"kyc_status": "approved", "reason": "file complete"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == ApprovalStatus.PENDING
    assert response.json()["proposed"] == {"kyc_status": "approved"}
    services.approval_request_approve(
        request=ApprovalRequest.objects.get(pk=response.json()["id"]), actor=checker
    )
    assert Client.objects.get(pk=client.pk).kyc_status == KycStatus.APPROVED
