"""The broker's order system reports the fills of securities sell orders through the API."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.audit import SYSTEM
from financing.enums import ForcedSaleStatus, SaleOrderStatus
from financing.lending.services import drawdown_create
from financing.liquidation.forced_sales import forced_sale_step
from financing.models import ForcedSale, SaleFill
from financing.monitoring.cycle import monitoring_cycle_run
from tests.api.conftest import client_user
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(market):
    facility = facility_with_pool(holdings={"0700.HK": "1000"})
    drawdown_create(facility=facility, amount="119000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("0700.HK", "280")
    monitoring_cycle_run(symbols=["0700.HK"], trigger="test")
    sale = ForcedSale.objects.get(facility=facility)
    assert forced_sale_step(sale_id=sale.pk) == ForcedSaleStatus.SUBMITTED
    return sale.orders.get()


def url(order):
    return f"/api/v1/forced-sales/{order.forced_sale_id}/fills/"


def body(order, **overrides):
    return {
        "client_order_id": order.client_order_id,
        "fill_id": "OMS-1",
        "quantity": "100",
        "price": "280",
        "fee": "12.50",
    } | overrides


def test_a_fill_is_recorded_once_and_shown_on_the_sale(key_client, order):
    oms = key_client("read", "lending")
    response = oms.post(url(order), body(order), format="json")
    assert response.status_code == 201, response.json()
    assert response.json() | {"id": None, "created_at": None} == {
        "id": None,
        "created_at": None,
        "client_order_id": order.client_order_id,
        "fill_id": "OMS-1",
        "quantity": "100",
        "price": "280",
        "fee": "12.5",
        "proceeds": "27987.5",
    }
    again = oms.post(url(order), body(order), format="json")
    assert again.status_code == 200
    assert SaleFill.objects.count() == 1
    sale = oms.get(f"/api/v1/forced-sales/{order.forced_sale_id}/").json()
    assert sale["orders"][0]["filled_quantity"] == "100"
    assert sale["proceeds"] == "27987.5"


def test_fills_close_the_order_and_finish_the_sale(key_client, order):
    oms = key_client("lending")
    response = oms.post(url(order), body(order, quantity=str(order.quantity), fill_id="ALL"), format="json")
    assert response.status_code == 201
    order.refresh_from_db()
    assert order.status == SaleOrderStatus.FILLED
    assert forced_sale_step(sale_id=order.forced_sale_id) == ForcedSaleStatus.FILLED


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"quantity": "100000"}, 400, "overfill"),
        ({"client_order_id": "FS999-9"}, 404, "unknown_order"),
        ({"price": "-1"}, 400, None),
        ({"quantity": 100}, 400, None),  # a JSON number: amounts are strings
    ],
)
def test_bad_fills_are_refused_and_write_nothing(key_client, order, overrides, status, code):
    oms = key_client("lending")
    with writes_nothing():
        response = oms.post(url(order), body(order, **overrides), format="json")
    assert response.status_code == status, response.json()
    if code:
        assert response.json()["error"]["code"] == code


def test_only_the_lending_scope_and_never_a_client_records_fills(key_client, order):
    reader = key_client("read")
    with writes_nothing():
        assert reader.post(url(order), body(order), format="json").status_code == 403
    client = APIClient()
    login_as(client, client_user(order.forced_sale.facility.client))
    with writes_nothing():
        assert client.post(url(order), body(order), format="json").status_code == 403
    assert Decimal(0) == sum(f.quantity for f in SaleFill.objects.all())
