"""A real Celery worker on the Redis broker: a price shock becomes a margin call, and the margin call a
signed webhook delivered to the broker's endpoint — every step through the queue, nothing eager."""

import json
import time

import pytest
from celery.contrib.testing.worker import start_worker

from accounts.audit import SYSTEM
from config.celery import app
from financing.lending.services import drawdown_create
from financing.models import MarginCall
from financing.monitoring.cycle import monitoring_cycle_run
from financing.tasks import margin_sweep
from notifications.enums import DeliveryStatus
from notifications.models import OutboxMessage, WebhookEndpoint
from notifications.signing import SIGNATURE_HEADER, verify
from tests.collateral.factories import price, standard_market
from tests.financing.factories import facility_with_pool
from tests.webhook_receiver import webhook_receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


@pytest.fixture
def real_worker(settings):
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield
    finally:
        app.conf.task_always_eager = True


def test_a_price_shock_reaches_the_brokers_webhook_through_the_worker(real_worker):
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    with webhook_receiver() as receiver:
        endpoint = WebhookEndpoint.objects.create(
            name="OMS", url=receiver.url, secret="whsec", event_types=["margin_call.issued"]
        )
        price("BTC", "80000")  # committed: the worker reads it from PostgreSQL
        margin_sweep.delay(["BTC"], "price shock")
        assert receiver.arrived.wait(timeout=60), "no webhook arrived within 60 s"
        # The receiver has answered; the worker records the delivery right after. Wait for that too.
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and not OutboxMessage.objects.filter(endpoint=endpoint, status=DeliveryStatus.DELIVERED).exists()
        ):
            time.sleep(0.1)
    (request,) = receiver.received
    body = json.loads(request.body)
    call = MarginCall.objects.get(facility=facility)
    assert body["type"] == "margin_call.issued"
    assert body["data"]["margin_call"] == call.pk
    assert body["data"]["repayment_due"] == "53040.00"
    assert verify(endpoint.secret, request.body, request.headers[SIGNATURE_HEADER])
    message = OutboxMessage.objects.get(endpoint=endpoint)
    assert message.status == DeliveryStatus.DELIVERED
    assert str(message.event_id) == request.headers["X-Margin-Event-Id"]
