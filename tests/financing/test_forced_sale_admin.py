"""Forced sales in the admin: the pages, the kill switch, a fill entered by operations."""

import pytest
from django.urls import reverse

from accounts.audit import SYSTEM
from accounts.models import ApprovalRequest
from financing.enums import ForcedSaleStatus, SaleOrderStatus
from financing.lending.services import drawdown_create
from financing.liquidation.forced_sales import forced_sale_step, kill_switch
from financing.models import ForcedSale, SaleFill
from financing.monitoring.cycle import monitoring_cycle_run
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(market):
    facility = facility_with_pool(holdings={"0700.HK": "1000"})
    drawdown_create(facility=facility, amount="119000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("0700.HK", "280")
    monitoring_cycle_run(symbols=["0700.HK"], trigger="test")
    sale = ForcedSale.objects.get(facility=facility)
    forced_sale_step(sale_id=sale.pk)
    return sale.orders.get()


@pytest.mark.parametrize(
    "role", ["Credit officer", "Risk officer", "Operations", "Compliance", "Administrator"]
)
@pytest.mark.parametrize(
    "page",
    [
        "admin:financing_forcedsale_changelist",
        "admin:financing_salefill_changelist",
        "admin:financing_killswitch_changelist",
    ],
)
def test_every_role_reads_the_forced_sale_pages(client, order, role, page):
    login_as(client, StaffFactory(role=role))
    assert client.get(reverse(page)).status_code == 200


def test_the_sale_page_shows_its_orders(client, order):
    login_as(client, StaffFactory(role="Compliance"))
    body = client.get(
        reverse("admin:financing_forcedsale_change", args=[order.forced_sale_id])
    ).content.decode()
    assert order.client_order_id in body


def test_operations_enter_a_fill_from_the_order_system(client, order):
    login_as(client, StaffFactory(role="Operations"))
    response = client.post(
        reverse("admin:financing_salefill_add"),
        {"order": order.pk, "fill_id": "OMS-9", "quantity": str(order.quantity), "price": "280", "fee": "0"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    order.refresh_from_db()
    assert order.status == SaleOrderStatus.FILLED
    assert SaleFill.objects.get().fill_key == "OMS-9"
    assert forced_sale_step(sale_id=order.forced_sale_id) == ForcedSaleStatus.FILLED


def test_compliance_cannot_enter_fills(client, order):
    login_as(client, StaffFactory(role="Compliance"))
    assert client.get(reverse("admin:financing_salefill_add")).status_code == 403


def test_the_kill_switch_is_engaged_at_once_and_lifted_by_request(client, order):
    officer = StaffFactory(role="Risk officer")
    login_as(client, officer)
    switch = kill_switch()
    url = reverse("admin:financing_killswitch_change", args=[switch.pk])
    client.post(url, {"reason": "venue outage", "request_lift_reason": ""})
    assert kill_switch().engaged
    client.post(url, {"reason": "venue outage", "request_lift_reason": "venue back"})
    assert kill_switch().engaged  # only asked
    assert ApprovalRequest.objects.get(kind="kill_switch_lift").requested_by == officer
