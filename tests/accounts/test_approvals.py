from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from djmoney.money import Money

from accounts import services
from accounts.enums import ApprovalStatus
from accounts.exceptions import DuplicatePendingRequest, FourEyesViolation
from accounts.models import ApprovalRequest, AuditEvent
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from tests.accounts.factories import CreditProfileFactory, StaffFactory
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker():
    return StaffFactory(username="maker", role="Credit officer")


@pytest.fixture
def checker():
    return StaffFactory(username="checker", role="Credit officer")


@pytest.fixture
def profile():
    return CreditProfileFactory(credit_limit=Money("1000000.00", "HKD"))


def test_a_limit_change_takes_effect_only_on_approval(maker, checker, profile):
    request = services.credit_limit_change_request(profile=profile, credit_limit="2500000.00", actor=maker)
    profile.refresh_from_db()
    assert profile.credit_limit == Money(Decimal("1000000.00"), "HKD")
    assert request.current == {"credit_limit": "1000000.00"}
    assert request.proposed == {"credit_limit": "2500000.00"}

    services.approval_request_approve(request=request, actor=checker, note="evidence checked")

    profile.refresh_from_db()
    request.refresh_from_db()
    assert profile.credit_limit == Money(Decimal("2500000.00"), "HKD")
    assert request.status == ApprovalStatus.APPROVED
    assert request.decided_by == checker
    change = AuditEvent.objects.get(action="credit_limit.changed")
    assert change.before == {"credit_limit": {"amount": "1000000.00", "currency": "HKD"}}
    assert change.after["credit_limit"] == {"amount": "2500000.00", "currency": "HKD"}
    assert change.actor == checker
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == [
        "approval.requested",
        "credit_limit.changed",
        "approval.approved",
    ]


def test_nobody_approves_their_own_request(maker, profile):
    request = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    with writes_nothing(), pytest.raises(FourEyesViolation, match="a second member of staff must decide it"):
        services.approval_request_approve(request=request, actor=maker)
    request.refresh_from_db()
    profile.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING
    assert profile.credit_limit == Money("1000000.00", "HKD")


def test_nobody_rejects_their_own_request(maker, profile):
    request = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    with writes_nothing(), pytest.raises(FourEyesViolation):
        services.approval_request_reject(request=request, actor=maker)


def test_the_database_refuses_self_approval_when_the_service_is_bypassed(maker, profile):
    request = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    with pytest.raises(IntegrityError, match="approval_not_by_requester"), transaction.atomic():
        ApprovalRequest.objects.filter(pk=request.pk).update(
            status=ApprovalStatus.APPROVED, decided_by=maker, decided_at=request.requested_at
        )


def test_a_second_pending_request_for_the_same_change_is_refused(maker, checker, profile):
    first = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    with (
        writes_nothing(),
        pytest.raises(DuplicatePendingRequest, match=f"Request #{first.pk} .* already pending"),
    ):
        services.credit_limit_change_request(profile=profile, credit_limit="3000000", actor=checker)


def test_the_database_refuses_a_second_pending_request(maker, profile):
    first = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    with pytest.raises(IntegrityError, match="one_pending_request_per_change"), transaction.atomic():
        ApprovalRequest.objects.create(
            kind=first.kind,
            target_type=first.target_type,
            target_id=first.target_id,
            target_repr="x",
            proposed={"credit_limit": "5"},
            requested_by=maker,
        )


def test_after_a_decision_a_new_request_may_be_made(maker, checker, profile):
    first = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    services.approval_request_reject(request=first, actor=checker, note="not justified")
    second = services.credit_limit_change_request(profile=profile, credit_limit="1500000", actor=maker)
    assert second.status == ApprovalStatus.PENDING
    profile.refresh_from_db()
    assert profile.credit_limit == Money("1000000.00", "HKD")


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("0", "credit_limit: must be more than zero, not 0."),
        ("-100", "credit_limit: must be more than zero, not -100."),
        ("100.001", "credit_limit: 100.001 has more than 2 decimal places."),
        (
            "ten million",
            "credit_limit: 'ten million' is not an amount (plain digits with an optional decimal point, e.g. 1250.50).",
        ),
        (
            "NaN",
            "credit_limit: 'NaN' is not an amount (plain digits with an optional decimal point, e.g. 1250.50).",
        ),
        (Money("100", "USD"), "credit_limit: must be in HKD, not USD."),
        ("1000000.00", "The credit limit is already HK$1,000,000.00."),
    ],
)
def test_a_limit_that_is_not_a_positive_hkd_amount_is_refused(maker, profile, limit, message):
    with writes_nothing(), pytest.raises(InvalidInput) as refusal:
        services.credit_limit_change_request(profile=profile, credit_limit=limit, actor=maker)
    assert str(refusal.value) == message


def test_only_staff_with_the_permission_decide(maker, profile):
    compliance = StaffFactory(role="Compliance")
    request = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    with writes_nothing(), pytest.raises(PermissionRefused, match="may not decide a credit limit change"):
        services.approval_request_approve(request=request, actor=compliance)


def test_only_staff_with_the_permission_request(profile):
    compliance = StaffFactory(role="Compliance")
    with writes_nothing(), pytest.raises(PermissionRefused, match="may not request a credit limit change"):
        services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=compliance)


def test_a_decided_request_cannot_be_decided_again(maker, checker, profile):
    request = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    services.approval_request_approve(request=request, actor=checker)
    other = StaffFactory(role="Credit officer")
    with writes_nothing(), pytest.raises(InvalidTransition, match="is approved; it cannot become rejected"):
        services.approval_request_reject(request=request, actor=other)


def test_the_requester_may_cancel_but_nobody_else(maker, checker, profile):
    request = services.credit_limit_change_request(profile=profile, credit_limit="2000000", actor=maker)
    with writes_nothing(), pytest.raises(PermissionRefused):
        services.approval_request_cancel(request=request, actor=checker)
    services.approval_request_cancel(request=request, actor=maker)
    request.refresh_from_db()
    assert request.status == ApprovalStatus.CANCELLED
    assert AuditEvent.objects.filter(action="approval.cancelled", actor=maker).exists()
