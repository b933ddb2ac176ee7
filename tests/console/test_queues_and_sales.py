"""The queues and the forced sales page for every role; deciding approvals from the queue (never one's own),
the kill switch (engaged by one risk officer, lifted by two) and what a sale shows: its first plan, its
orders and fills, slippage against the oracle, the ratio before and after."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

from accounts import roles
from accounts.audit import SYSTEM
from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest
from accounts.services import credit_limit_change_request
from console.selectors.sales import sales_page
from fake_exchange import FAKE_CREDENTIALS
from fake_exchange.pytest_plugin import fake_bitstamp  # noqa: F401  (fixture)
from financing.enums import ForcedSaleStatus
from financing.lending.services import drawdown_create
from financing.liquidation.forced_sales import forced_sale_step
from financing.liquidation.kill_switch import kill_switch
from financing.models import ForcedSale, MarginCall
from financing.monitoring.cycle import monitoring_cycle_run
from tests.accounts.factories import ClientFactory, CreditProfileFactory, StaffFactory
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

ROLES = ["credit", "risk", "operations", "compliance", "administrator"]
PAGES = ["console:queues", "console:queues_live", "console:forced_sales", "console:forced_sales_live"]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_queues_and_the_sales(as_role, role, page, market):
    assert as_role(role).get(reverse(page)).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_nobody_else_does(client, page):
    assert client.get(reverse(page)).status_code == 302


# --- approvals from the queue ---


@pytest.fixture
def limit_request(staff):
    profile = CreditProfileFactory(client=ClientFactory(name="Asking Ltd"))
    return credit_limit_change_request(
        profile=profile, credit_limit="12000000.00", actor=staff.credit, reason="Bigger book"
    )


def test_a_credit_officer_approves_another_ones_request_from_the_queue(limit_request, staff, client):
    second = StaffFactory(username="credit2", role=roles.CREDIT_OFFICER)
    login_as(client, second)
    page = client.get(reverse("console:queues")).content.decode()
    assert f'data-approval="{limit_request.pk}"' in page
    assert 'data-action="approve-request"' in page
    client.post(reverse("console:approval_approve", args=[limit_request.pk]), {"note": "Checked"})
    limit_request.refresh_from_db()
    assert (limit_request.status, limit_request.decided_by) == (ApprovalStatus.APPROVED, second)
    assert limit_request.decision_note == "Checked"
    profile = limit_request.target
    assert profile.credit_limit == Money(Decimal("12000000.00"), "HKD")


def test_nobody_sees_or_decides_their_own(limit_request, as_role):
    client = as_role("credit")
    page = client.get(reverse("console:queues")).content.decode()
    assert f'data-approval="{limit_request.pk}"' not in page
    for name in ("console:approval_approve", "console:approval_reject"):
        with writes_nothing():
            response = client.post(reverse(name, args=[limit_request.pk]))
        assert response.status_code == 403
    assert ApprovalRequest.objects.get(pk=limit_request.pk).status == ApprovalStatus.PENDING


@pytest.mark.parametrize("role", ["risk", "operations", "compliance", "administrator"])
def test_roles_that_may_not_decide_a_kind_are_refused(limit_request, as_role, role):
    client = as_role(role)
    page = client.get(reverse("console:queues")).content.decode()
    assert 'data-action="approve-request"' not in page
    with writes_nothing():
        response = client.post(reverse("console:approval_approve", args=[limit_request.pk]))
    assert response.status_code == 403


def test_compliance_reads_every_pending_request(limit_request, as_role):
    page = as_role("compliance").get(reverse("console:queues")).content.decode()
    assert f'data-approval="{limit_request.pk}"' in page
    assert "you decide none of them" in page


# --- margin calls due today, sales waiting ---


def test_calls_due_today_and_sales_waiting(book, as_role):
    call = MarginCall.objects.get(facility=book.called)
    client = as_role("compliance")
    if call.deadline >= timezone.now().replace(hour=23, minute=59):
        assert f'data-call="{call.pk}"' not in client.get(reverse("console:queues")).content.decode()
    MarginCall.objects.filter(pk=call.pk).update(deadline=timezone.now() - datetime.timedelta(minutes=5))
    sale = ForcedSale.objects.create(
        facility=book.warned, trigger="manual", status=ForcedSaleStatus.AWAITING_APPROVAL
    )
    page = client.get(reverse("console:queues")).content.decode()
    assert f'data-call="{call.pk}"' in page
    assert f'data-sale="{sale.pk}"' in page
    assert 'data-action="approve-sale"' not in page  # compliance: no buttons


# --- the kill switch ---


def test_one_risk_officer_engages_the_kill_switch_and_two_lift_it(market, as_role, staff, client):
    risk = as_role("risk")
    risk.get(reverse("console:forced_sales"))
    with writes_nothing():
        risk.post(reverse("console:kill_switch_engage"), {"reason": " "})  # a reason is needed
    risk.post(reverse("console:kill_switch_engage"), {"reason": "Venue outage"})
    assert kill_switch().engaged
    risk.post(reverse("console:kill_switch_lift"), {"reason": "Venue back"})
    lift = ApprovalRequest.objects.get(kind="kill_switch_lift", status=ApprovalStatus.PENDING)
    with writes_nothing():
        assert risk.post(reverse("console:approval_approve", args=[lift.pk])).status_code == 403
    second = StaffFactory(username="risk2", role=roles.RISK_OFFICER)
    login_as(client, second)
    assert f'data-approval="{lift.pk}"' in client.get(reverse("console:queues")).content.decode()
    client.post(reverse("console:approval_approve", args=[lift.pk]))
    assert not kill_switch().engaged


@pytest.mark.parametrize("role", ["credit", "operations", "compliance", "administrator"])
def test_other_roles_may_not_touch_the_kill_switch(market, as_role, role):
    client = as_role(role)
    page = client.get(reverse("console:forced_sales")).content.decode()
    assert 'data-action="engage-kill-switch"' not in page
    with writes_nothing():
        assert client.post(reverse("console:kill_switch_engage"), {"reason": "x"}).status_code == 403
        assert client.post(reverse("console:kill_switch_lift"), {"reason": "x"}).status_code == 403
    assert not kill_switch().engaged


# --- a sale as the page shows it ---


@pytest.fixture
def venue(fake_bitstamp, settings):  # noqa: F811
    settings.FORCED_SALE_VENUE = {
        "name": "fake-bitstamp",
        "exchange": "bitstamp",
        "base_url": fake_bitstamp.base_url,
        "timeout_ms": 800,
        "order_type": "limit",
        "markets": {"BTC": "BTC/USD", "ETH": "ETH/USD"},
        **FAKE_CREDENTIALS,
    }
    settings.FORCED_SALE_REPRICE_SECONDS = 3600
    fake_bitstamp.set_price("BTC/USD", "69300")  # fills 1% under the oracle's US$70,000
    return fake_bitstamp


def test_a_filled_sale_shows_its_first_plan_fills_slippage_and_ratios(market, venue, as_role):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("BTC", "70000")
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    sale = ForcedSale.objects.get(facility=facility)
    for _ in range(10):
        if forced_sale_step(sale_id=sale.pk) == ForcedSaleStatus.FILLED:
            break
    monitoring_cycle_run(trigger="test")
    (card,) = sales_page().sales
    sale.refresh_from_db()
    assert card.sale.status == ForcedSaleStatus.FILLED
    assert card.first_plan.sales[0].asset == "BTC"
    assert card.first_plan.margin_ratio == Decimal(sale.first_plan["margin_ratio"])
    assert card.ratio_before == sale.ratio_at_request
    filled = [order for order in card.orders if order.fills]
    assert filled
    order = filled[0]
    assert order.order.reference_price == Decimal("70000")
    assert order.average_price == order.order.filled_cost / order.order.filled_quantity
    assert order.slippage == order.average_price / Decimal("70000") - 1
    assert order.slippage < 0
    assert card.ratio_after is not None
    assert card.ratio_after < card.ratio_before
    page = as_role("compliance").get(reverse("console:forced_sales")).content.decode()
    assert f'data-order="{order.order.client_order_id}"' in page
    assert "The plan as first made" in page
