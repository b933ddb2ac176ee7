"""Deactivating a webhook endpoint stops everything still queued for it, retries included, and says how many
messages that was."""

import pytest
from django.contrib.messages import get_messages
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from notifications.enums import DeliveryStatus
from notifications.models import OutboxMessage, WebhookEndpoint
from notifications.services import event_record, outbox_deliver, outbox_retry_failed
from notifications.tasks import deliver_due_messages
from notifications.webhook_endpoints import webhook_endpoint_create, webhook_endpoint_deactivate
from tests.accounts.factories import StaffFactory
from tests.helpers import login_as
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with webhook_receiver() as receiver:
        yield receiver


def events(count: int) -> list[OutboxMessage]:
    with transaction.atomic():
        ids = [
            event_record(type="margin_call.issued", summary=f"Call {n}", payload={}).pk for n in range(count)
        ]
    return list(OutboxMessage.objects.filter(event_id__in=ids, channel="webhook").order_by("pk"))


@pytest.fixture
def endpoint_with_a_backlog(receiver):
    """An endpoint with three messages queued: one already retried once (its receiver answered 503), two
    not yet tried, and one delivered before."""
    endpoint = webhook_endpoint_create(name="OMS", url=receiver.url, actor=SYSTEM)
    (delivered,) = events(1)
    assert outbox_deliver(message_id=delivered.pk) == "delivered"
    receiver.statuses = [503]
    retried, *_ = events(3)
    assert outbox_deliver(message_id=retried.pk) == "retry"
    OutboxMessage.objects.filter(pk=retried.pk).update(next_attempt_at=retried.created_at)  # due again now
    receiver.received.clear()
    return endpoint


def test_deactivating_cancels_what_is_queued_and_says_how_many(endpoint_with_a_backlog, receiver):
    done = webhook_endpoint_deactivate(endpoint=endpoint_with_a_backlog, actor=SYSTEM)
    assert done.messages_cancelled == 3
    assert done.endpoint.is_active is False
    statuses = sorted(OutboxMessage.objects.filter(endpoint=done.endpoint).values_list("status", flat=True))
    assert statuses == ["cancelled", "cancelled", "cancelled", "delivered"]
    deliver_due_messages()  # the periodic delivery: nothing left for this endpoint
    for message in OutboxMessage.objects.filter(endpoint=done.endpoint):
        assert outbox_deliver(message_id=message.pk) == "skipped"
    assert receiver.received == []
    event = AuditEvent.objects.get(action="webhook_endpoint.deactivated")
    assert event.after == {"is_active": False, "messages_cancelled": 3}


def test_a_cancelled_message_cannot_be_put_back_in_the_queue(endpoint_with_a_backlog):
    webhook_endpoint_deactivate(endpoint=endpoint_with_a_backlog, actor=SYSTEM)
    message = OutboxMessage.objects.filter(status=DeliveryStatus.CANCELLED).first()
    assert outbox_retry_failed(message=message).status == DeliveryStatus.CANCELLED


def test_a_message_for_an_endpoint_deactivated_behind_the_services_back_is_not_sent(receiver):
    endpoint = webhook_endpoint_create(name="OMS", url=receiver.url, actor=SYSTEM)
    (message,) = events(1)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    assert outbox_deliver(message_id=message.pk) == "cancelled"
    assert receiver.received == []


def test_the_api_says_how_many_messages_were_cancelled(endpoint_with_a_backlog):
    api = APIClient()
    login_as(api, StaffFactory(role="Operations"))
    response = api.post(f"/api/v1/webhook-endpoints/{endpoint_with_a_backlog.pk}/deactivate/")
    assert response.status_code == 200, response.json()
    assert (response.json()["is_active"], response.json()["messages_cancelled"]) == (False, 3)


def test_the_admin_says_how_many_messages_were_cancelled(endpoint_with_a_backlog, client):
    login_as(client, StaffFactory(role="Operations"))
    response = client.post(
        reverse("admin:notifications_webhookendpoint_changelist"),
        {"action": "deactivate", "_selected_action": [endpoint_with_a_backlog.pk]},
    )
    assert response.status_code == 302
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert "OMS: deactivated; 3 queued message(s) cancelled." in shown
