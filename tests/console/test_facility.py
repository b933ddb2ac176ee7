"""The facility page for every role, and its actions: allowed for the roles the matrix allows, refused with
403 and nothing written for the others."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest, AuditEvent
from accounts.services import approval_request_approve
from console.selectors.facility import facility_page
from financing.enums import ForcedSaleStatus, MarginCallStatus, PauseReason
from financing.margin_calls.deadline import margin_call_deadline_extension_request
from financing.models import ForcedSale, MarginCall
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db

ROLES = ["credit", "risk", "operations", "compliance", "administrator"]
ACTION_MARKS = ['data-action="extend-deadline"', 'data-action="top-up"', 'data-action="approve-sale"']


def hkt_local(moment: datetime.datetime) -> str:
    return timezone.localtime(moment, datetime.timezone(datetime.timedelta(hours=8))).strftime(
        "%Y-%m-%dT%H:%M"
    )


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_facility_page(book, as_role, role):
    page = as_role(role).get(reverse("console:facility", args=[book.called.pk])).content.decode()
    assert book.called.reference in page
    assert 'data-chart="ratio-chart-data"' in page
    assert 'id="ratio-chart-data"' in page
    assert 'data-position="BTC"' in page
    assert 'data-kind="margin_call"' in page
    assert 'data-kind="drawdown"' in page
    shows_extend = 'data-action="extend-deadline"' in page
    assert shows_extend == (role == "risk")


def test_the_page_figures(book):
    page = facility_page(book.called)
    assert page.debt.principal == Decimal("265000.00")
    assert page.margin_value == Decimal("249600.00")
    (btc,) = page.positions
    assert (btc.symbol, btc.quantity, btc.haircut, btc.margin_value) == (
        "BTC",
        Decimal("1"),
        Decimal("0.6000"),
        Decimal("249600.00"),
    )
    assert page.open_call is not None
    ratios = page.ratio_chart["data"]["datasets"][0]["data"]
    assert ratios[-1] == str(MarginCall.objects.get(facility=book.called).ratio_at_issue)
    assert page.ratio_chart["data"]["datasets"][2]["data"][0] == "1.0000"  # the margin-call threshold
    assert page.price_chart["data"]["datasets"][0]["label"] == "BTC"
    kinds = [entry.kind for entry in page.timeline]
    assert {"drawdown", "margin_call", "movement", "audit"} <= set(kinds)
    assert [entry.at for entry in page.timeline] == sorted(
        (entry.at for entry in page.timeline), reverse=True
    )


def test_an_unknown_facility_is_404(as_role, market):
    assert as_role("risk").get(reverse("console:facility", args=[999999])).status_code == 404


# --- extending a margin call's deadline (four-eyes) ---


def test_a_risk_officer_asks_and_a_second_extends_the_deadline(book, as_role, staff, client):
    call = MarginCall.objects.get(facility=book.called, status=MarginCallStatus.ISSUED)
    new = call.deadline + datetime.timedelta(days=1)
    response = as_role("risk").post(
        reverse("console:margin_call_extend", args=[call.pk]),
        {"deadline": hkt_local(new), "reason": "Client wiring funds from abroad"},
    )
    assert response.status_code == 302
    request = ApprovalRequest.objects.get(kind="margin_call_deadline")
    assert request.requested_by == staff.risk
    call.refresh_from_db()
    assert call.deadline != new.replace(second=0, microsecond=0)  # nothing moves before the second person
    page = client.get(reverse("console:facility", args=[book.called.pk])).content.decode()
    assert "waits for a second risk officer" in page
    second = staff.risk.__class__.objects.create(username="risk2", is_staff=True)
    second.groups.set(staff.risk.groups.all())
    approval_request_approve(request=request, actor=second)
    call.refresh_from_db()
    assert call.deadline == new.replace(second=0, microsecond=0)
    assert AuditEvent.objects.filter(action="margin_call.deadline_extended", target_id=str(call.pk)).exists()


@pytest.mark.parametrize("role", ["credit", "operations", "compliance", "administrator"])
def test_other_roles_may_not_ask(book, as_role, role):
    call = MarginCall.objects.get(facility=book.called, status=MarginCallStatus.ISSUED)
    client = as_role(role)
    with writes_nothing():
        response = client.post(
            reverse("console:margin_call_extend", args=[call.pk]),
            {"deadline": hkt_local(call.deadline + datetime.timedelta(days=1)), "reason": "because"},
        )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("shift", "reason", "message"),
    [
        (datetime.timedelta(days=-1), "why", "later than the current one"),
        (datetime.timedelta(days=8), "why", "at most 7 days"),
        (datetime.timedelta(days=1), "", "Say why"),
    ],
)
def test_a_bad_extension_is_refused_with_a_message(book, as_role, shift, reason, message):
    call = MarginCall.objects.get(facility=book.called, status=MarginCallStatus.ISSUED)
    client = as_role("risk")
    with writes_nothing():
        response = client.post(
            reverse("console:margin_call_extend", args=[call.pk]),
            {"deadline": hkt_local(call.deadline + shift), "reason": reason},
            follow=True,
        )
    assert message in response.content.decode()


def test_the_requester_cannot_approve_their_own_extension(book, staff):
    call = MarginCall.objects.get(facility=book.called, status=MarginCallStatus.ISSUED)
    request = margin_call_deadline_extension_request(
        call=call, deadline=call.deadline + datetime.timedelta(hours=4), actor=staff.risk, reason="why"
    )
    with writes_nothing(), pytest.raises(Exception, match="four-eyes"):
        approval_request_approve(request=request, actor=staff.risk)
    assert ApprovalRequest.objects.get(pk=request.pk).status == ApprovalStatus.PENDING


# --- running the automatic top-up now ---


@pytest.mark.parametrize("role", ["operations", "compliance", "administrator"])
def test_only_credit_and_risk_officers_run_a_top_up(book, as_role, role):
    client = as_role(role)
    with writes_nothing():
        response = client.post(reverse("console:top_up_run", args=[book.called.pk]))
    assert response.status_code == 403


@pytest.mark.parametrize("role", ["credit", "risk"])
def test_a_top_up_with_nothing_to_do_says_so(book, as_role, role):
    response = as_role(role).post(reverse("console:top_up_run", args=[book.called.pk]), follow=True)
    assert "Nothing to do" in response.content.decode()


# --- approving, pausing and resuming a sale ---


@pytest.fixture
def held_sale(book):
    """A forced sale awaiting approval on the called facility (as a policy that holds sales makes it)."""
    return ForcedSale.objects.create(
        facility=book.called, trigger="manual", status=ForcedSaleStatus.AWAITING_APPROVAL
    )


@pytest.mark.parametrize("role", ["credit", "operations", "compliance", "administrator"])
def test_only_risk_officers_approve_pause_or_resume_a_sale(held_sale, as_role, role):
    client = as_role(role)
    for name in ("sale_approve", "sale_pause", "sale_resume"):
        with writes_nothing():
            response = client.post(reverse(f"console:{name}", args=[held_sale.pk]), {"reason": "look"})
        assert response.status_code == 403, name
    page = client.get(reverse("console:facility", args=[held_sale.facility_id])).content.decode()
    assert 'data-action="approve-sale"' not in page


def test_a_risk_officer_approves_a_held_sale(held_sale, as_role, staff, django_capture_on_commit_callbacks):
    client = as_role("risk")
    page = client.get(reverse("console:facility", args=[held_sale.facility_id])).content.decode()
    assert 'data-action="approve-sale"' in page
    with django_capture_on_commit_callbacks():
        client.post(reverse("console:sale_approve", args=[held_sale.pk]))
    held_sale.refresh_from_db()
    assert held_sale.status == ForcedSaleStatus.SUBMITTED
    assert held_sale.approved_by == staff.risk
    assert AuditEvent.objects.filter(action="forced_sale.submitted", target_id=str(held_sale.pk)).exists()


def test_a_risk_officer_pauses_and_resumes_a_running_sale(held_sale, as_role, staff):
    held_sale.status = ForcedSaleStatus.SUBMITTED
    held_sale.save(update_fields=["status"])
    client = as_role("risk")
    with writes_nothing():
        client.post(reverse("console:sale_pause", args=[held_sale.pk]), {"reason": "  "})
    client.post(reverse("console:sale_pause", args=[held_sale.pk]), {"reason": "Venue looks thin"})
    held_sale.refresh_from_db()
    assert (held_sale.status, held_sale.pause_reason) == (ForcedSaleStatus.PAUSED, PauseReason.STAFF)
    assert "Venue looks thin" in held_sale.status_reason
    page = client.get(reverse("console:facility", args=[held_sale.facility_id])).content.decode()
    assert 'data-action="resume-sale"' in page
    client.post(reverse("console:sale_resume", args=[held_sale.pk]))
    held_sale.refresh_from_db()
    assert held_sale.status == ForcedSaleStatus.SUBMITTED
