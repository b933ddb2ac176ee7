"""The admin pages of the automatic top-up: free custody holdings, the custody form, standing instructions
and the record of each top-up, as staff use them."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts import roles
from accounts.audit import SYSTEM
from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest
from accounts.services import approval_request_approve
from collateral.custody import custody_holding_receive
from collateral.models import CustodyMovement
from collateral.selectors import custody_holdings
from financing.enums import InstructionStatus, MarginCallStatus, TopUpOutcome
from financing.lending.services import drawdown_create
from financing.margin_calls.services import margin_call_issue
from financing.models import AutomaticTopUp, MarginCall, StandingTopUpInstruction
from financing.monitoring.cycle import monitoring_cycle_run
from financing.selectors import facility_pool, pending_sign_off_of
from financing.top_ups.instructions import standing_top_up_request
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def facility(market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    custody_holding_receive(
        client=facility.client,
        asset=market["HKD"],
        quantity="20000.00",
        actor=SYSTEM,
        external_reference="C-1",
    )
    return facility


@pytest.mark.parametrize(
    "role", [roles.CREDIT_OFFICER, roles.RISK_OFFICER, roles.OPERATIONS, roles.COMPLIANCE]
)
@pytest.mark.parametrize(
    "page",
    [
        "admin:financing_standingtopupinstruction_changelist",
        "admin:financing_automatictopup_changelist",
        "admin:collateral_custodymovement_changelist",
    ],
)
def test_every_role_reads_the_top_up_pages(client, facility, role, page):
    login_as(client, StaffFactory(role=role))
    assert client.get(reverse(page)).status_code == 200


def test_the_pool_page_shows_the_free_holdings_apart(client, facility):
    login_as(client, StaffFactory(role=roles.COMPLIANCE))
    pool = facility_pool(facility)
    body = client.get(reverse("admin:collateral_collateralpool_change", args=[pool.pk])).content.decode()
    assert "Free custody holdings (not pledged)" in body
    assert "<td>HKD</td><td>20000</td><td>HK$20,000.00</td><td>yes</td>" in body


def test_operations_record_the_custody_feed_and_a_refusal_says_why(client, facility):
    login_as(client, StaffFactory(role=roles.OPERATIONS))
    url = reverse("admin:collateral_custodymovement_add")
    form = {"client": facility.client.pk, "asset": "HKD", "external_reference": "C-2"}
    assert client.post(url, {**form, "kind": "received", "quantity": "5000.00"}).status_code == 302
    assert custody_holdings(facility.client) == {"HKD": Decimal("25000.00")}
    with writes_nothing():
        response = client.post(
            url,
            {**form, "kind": "released", "quantity": "25000.01", "external_reference": "C-3"},
            follow=True,
        )
    assert "25000.01 HKD cannot be released" in response.content.decode()
    assert CustodyMovement.objects.count() == 2


def test_staff_ask_for_an_instruction_and_another_signs_it_off_in_the_queue(client, facility):
    maker, checker = StaffFactory(role=roles.CREDIT_OFFICER), StaffFactory(role=roles.RISK_OFFICER)
    login_as(client, maker)
    response = client.post(
        reverse("admin:financing_standingtopupinstruction_add"),
        {
            "client": facility.client.pk,
            "trigger": "margin_call",
            "assets": "eth, 0005.HK",
            "reason": "signed form",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    instruction = StandingTopUpInstruction.objects.get()
    assert (instruction.status, instruction.asset_order) == (
        InstructionStatus.PENDING_SIGN_OFF,
        ["ETH", "0005.HK"],
    )
    approval = pending_sign_off_of(instruction)
    queue = client.get(reverse("admin:accounts_approvalrequest_changelist")).content.decode()
    assert "automatic top-up at a margin call: cash, ETH, 0005.HK" in queue
    client.post(
        reverse("admin:accounts_approvalrequest_changelist"),
        {"action": "approve", "_selected_action": [approval.pk]},
        follow=True,
    )
    instruction.refresh_from_db()
    assert instruction.status == InstructionStatus.PENDING_SIGN_OFF  # not by its maker
    login_as(client, checker)
    client.post(
        reverse("admin:accounts_approvalrequest_changelist"),
        {"action": "approve", "_selected_action": [approval.pk]},
        follow=True,
    )
    instruction.refresh_from_db()
    assert (instruction.status, instruction.signed_off_by) == (InstructionStatus.ACTIVE, checker)


def test_a_refused_request_in_the_admin_says_why_and_writes_nothing(client, facility):
    login_as(client, StaffFactory(role=roles.CREDIT_OFFICER))
    with writes_nothing():
        response = client.post(
            reverse("admin:financing_standingtopupinstruction_add"),
            {"client": facility.client.pk, "trigger": "margin_call", "assets": "HKD", "reason": ""},
            follow=True,
        )
    assert "HKD is cash; cash is always moved first, so leave it out." in response.content.decode()


def test_revoking_and_running_an_instruction_from_the_list(client, facility):
    maker, checker = StaffFactory(role=roles.CREDIT_OFFICER), StaffFactory(role=roles.RISK_OFFICER)
    instruction = standing_top_up_request(
        client=facility.client, trigger="margin_call", asset_order=[], actor=maker
    )
    assert ApprovalRequest.objects.get(status=ApprovalStatus.PENDING).kind == "standing_top_up"
    approval_request_approve(request=pending_sign_off_of(instruction), actor=checker)
    price("BTC", "80000")
    margin_call_issue(facility=facility, actor=SYSTEM)  # issued by hand: the ladder's hook did not run
    login_as(client, checker)
    changelist = reverse("admin:financing_standingtopupinstruction_changelist")
    response = client.post(
        changelist, {"action": "run_now", "_selected_action": [instruction.pk]}, follow=True
    )
    top_up = AutomaticTopUp.objects.get()
    assert top_up.outcome == TopUpOutcome.PARTIAL
    assert (
        f"{facility}: moved all it could; the rest is still due (#{top_up.pk})." in response.content.decode()
    )
    assert MarginCall.objects.get().status == MarginCallStatus.ISSUED
    assert custody_holdings(facility.client) == {}
    page = client.get(reverse("admin:financing_automatictopup_change", args=[top_up.pk])).content.decode()
    assert "20000" in page
    client.post(changelist, {"action": "revoke", "_selected_action": [instruction.pk]}, follow=True)
    instruction.refresh_from_db()
    assert instruction.status == InstructionStatus.REVOKED
    assert instruction.revoked_by == checker
