import datetime
import json
import threading

import pytest
from django.core import mail
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.test import override_settings
from django.utils import timezone

from notifications.enums import Channel, DeliveryStatus
from notifications.models import Event, OutboxMessage, WebhookEndpoint
from notifications.services import (
    BATCH_DELIVERY_THRESHOLD,
    EventSpec,
    event_record,
    events_record,
    outbox_deliver,
    outbox_due_ids,
)
from notifications.signing import SIGNATURE_HEADER, sign, verify
from notifications.tasks import deliver_due_messages
from tests.accounts.factories import ClientFactory
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with webhook_receiver() as receiver:
        yield receiver


def record(**overrides):
    arguments = {
        "type": "margin_call.issued",
        "summary": "Margin call on F000001",
        "payload": {"facility": "F000001", "repayment_due": "53040.00"},
        "client": ClientFactory(email="client@example.com"),
        "notify_staff": False,
    } | overrides
    with transaction.atomic():
        return event_record(**arguments)


def assert_delete_refused(table, pk, match: str | None = None):
    """A delete past the ORM is refused by the database (a trigger, unless ``match`` says otherwise)."""
    with (
        pytest.raises(DatabaseError, match=match or f"DELETE on {table} refused"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])


def test_an_event_writes_one_message_per_destination(receiver):
    WebhookEndpoint.objects.create(name="OMS", url=receiver.url, secret="s3cret")
    WebhookEndpoint.objects.create(
        name="Only fills", url=receiver.url, secret="x", event_types=["forced_sale.filled"]
    )
    WebhookEndpoint.objects.create(name="Off", url=receiver.url, secret="x", is_active=False)
    event = record()
    messages = OutboxMessage.objects.filter(event=event)
    assert sorted(messages.values_list("channel", flat=True)) == [Channel.EMAIL, Channel.WEBHOOK]
    assert messages.get(channel=Channel.EMAIL).recipient == "client@example.com"
    assert messages.get(channel=Channel.WEBHOOK).endpoint.name == "OMS"


def message_insert(event, channel, *, endpoint=None, recipient=""):
    OutboxMessage.objects.create(event=event, channel=channel, endpoint=endpoint, recipient=recipient)


def test_the_database_keeps_one_message_per_event_and_destination():
    """One unique index for both channels: a second webhook to the same endpoint, or a second e-mail to the same
    address, for the same event is refused; other destinations, and the same ones for another event, are not."""
    oms = WebhookEndpoint.objects.create(name="OMS", url="http://127.0.0.1:9/hook", secret="s")
    risk = WebhookEndpoint.objects.create(name="Risk", url="http://127.0.0.1:9/risk", secret="s")
    event = record()  # a message to the client and one to each endpoint
    for channel, destination in [
        (Channel.WEBHOOK, {"endpoint": oms}),
        (Channel.EMAIL, {"recipient": "client@example.com"}),
    ]:
        with (
            pytest.raises(IntegrityError, match="one_message_per_event_and_destination"),
            transaction.atomic(),
        ):
            message_insert(event, channel, **destination)
    message_insert(event, Channel.EMAIL, recipient="desk@example.com")
    other = record()
    message_insert(other, Channel.EMAIL, recipient="desk@example.com")
    messages = OutboxMessage.objects.filter(event=event).order_by("endpoint__name", "recipient")
    assert list(messages.values_list("endpoint__name", "recipient")) == [
        ("OMS", ""),
        ("Risk", ""),
        (None, "client@example.com"),
        (None, "desk@example.com"),
    ]
    assert risk.messages.count() == 2


@pytest.mark.parametrize(
    ("channel", "with_endpoint", "recipient"),
    [(Channel.WEBHOOK, True, "desk@example.com"), (Channel.WEBHOOK, False, ""),
     (Channel.EMAIL, True, "desk@example.com"), (Channel.EMAIL, False, "")],
    ids=["webhook with an address", "webhook without an endpoint", "e-mail with an endpoint", "e-mail without an address"],
)  # fmt: skip
def test_a_message_goes_to_one_destination_of_its_channel(channel, with_endpoint, recipient):
    endpoint = WebhookEndpoint.objects.create(name="OMS", url="http://127.0.0.1:9/hook", secret="s")
    event = record()
    with pytest.raises(IntegrityError, match="outbox_message_has_one_destination"), transaction.atomic():
        message_insert(event, channel, endpoint=endpoint if with_endpoint else None, recipient=recipient)
    assert OutboxMessage.objects.filter(event=event).count() == 2


def test_a_message_never_loses_its_event():
    """Messages carry no key check on their event (a market move writes ten thousand): what keeps the
    reference whole is that no event can be deleted, through the ORM or past it."""
    event = record()
    assert OutboxMessage.objects.filter(event=event).count() == 1
    with pytest.raises(ProtectedError), transaction.atomic():
        event.delete()
    # Refused to the application's role by privilege; the owner meets the append-only trigger
    # (tests/core/test_database_roles.py).
    assert_delete_refused("notifications_event", event.pk, "permission denied for table notifications_event")
    assert OutboxMessage.objects.get(event=event).event.summary == event.summary


def test_a_client_with_events_is_never_deleted():
    """Events carry no key check on their client (the ladder writes thousands): what keeps the reference
    whole is that such a client cannot be deleted, through the ORM or past it."""
    event = record()
    client = event.client
    with pytest.raises(ProtectedError), transaction.atomic():
        client.delete()
    assert_delete_refused("accounts_client", client.pk)
    assert Event.objects.get(pk=event.pk).client == client


def test_an_endpoint_with_messages_is_never_deleted_and_one_without_is():
    endpoint = WebhookEndpoint.objects.create(name="OMS", url="http://127.0.0.1:9/hook", secret="s")
    spare = WebhookEndpoint.objects.create(
        name="Spare", url="http://127.0.0.1:9/spare", secret="s", is_active=False
    )
    record()
    assert OutboxMessage.objects.filter(endpoint=endpoint).count() == 1
    with pytest.raises(ProtectedError), transaction.atomic():
        endpoint.delete()
    assert_delete_refused("notifications_webhookendpoint", endpoint.pk)
    spare.delete()  # no message names it
    assert list(WebhookEndpoint.objects.all()) == [endpoint]


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_is_not_deleted_from_under_messages_not_yet_committed():
    """The messages being written are not visible to a delete from another transaction: the endpoints they
    name are read under FOR KEY SHARE, so the delete waits (here: times out) until they are committed, and is
    then refused for them."""
    endpoint = WebhookEndpoint.objects.create(name="OMS", url="http://127.0.0.1:9/hook", secret="s")
    outcome = {}

    def delete_meanwhile():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
                cursor.execute("DELETE FROM notifications_webhookendpoint WHERE id = %s", [endpoint.pk])
            outcome["deleted"] = True
        except DatabaseError as error:
            outcome["refused"] = str(error)
        finally:
            connection.close()

    with transaction.atomic():
        record(client=None)
        deleting = threading.Thread(target=delete_meanwhile)
        deleting.start()
        deleting.join()
    assert "lock timeout" in outcome.get("refused", "")
    assert_delete_refused("notifications_webhookendpoint", endpoint.pk)
    assert OutboxMessage.objects.get(endpoint=endpoint).channel == Channel.WEBHOOK


def test_a_webhook_is_signed_and_carries_the_event_id(receiver):
    endpoint = WebhookEndpoint.objects.create(name="OMS", url=receiver.url, secret="s3cret")
    event = record(client=None)
    message = OutboxMessage.objects.get(event=event)
    assert outbox_deliver(message_id=message.pk) == "delivered"
    (request,) = receiver.received
    body = json.loads(request.body)
    assert body["id"] == str(event.id)
    assert body["type"] == "margin_call.issued"
    assert body["data"] == {"facility": "F000001", "repayment_due": "53040.00"}
    assert request.headers["X-Margin-Event-Id"] == str(event.id)
    assert verify(endpoint.secret, request.body, request.headers[SIGNATURE_HEADER])
    assert not verify("wrong secret", request.body, request.headers[SIGNATURE_HEADER])
    message.refresh_from_db()
    assert (message.status, message.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert outbox_deliver(message_id=message.pk) == "skipped"  # never sent twice
    assert len(receiver.received) == 1


def test_signatures_expire():
    header = sign("k", b"{}", timestamp=1_000_000)
    assert verify("k", b"{}", header, now=1_000_100)
    assert not verify("k", b"{}", header, now=1_000_400)
    assert not verify("k", b"{} ", header, now=1_000_100)


@override_settings(OUTBOX_BACKOFF_BASE_SECONDS=5, OUTBOX_MAX_ATTEMPTS=3)
def test_a_failed_delivery_is_retried_with_backoff_then_given_up(receiver):
    receiver.statuses = [500, 503, 502]
    WebhookEndpoint.objects.create(name="OMS", url=receiver.url, secret="s")
    message = OutboxMessage.objects.get(event=record(client=None))
    before = timezone.now()
    assert outbox_deliver(message_id=message.pk) == "retry"
    message.refresh_from_db()
    assert message.last_error.startswith("RuntimeError: HTTP 500")
    assert (
        before + datetime.timedelta(seconds=5)
        <= message.next_attempt_at
        <= timezone.now() + datetime.timedelta(seconds=5)
    )
    assert outbox_deliver(message_id=message.pk) == "skipped"  # not due yet
    assert message.pk not in outbox_due_ids()
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox_deliver(message_id=message.pk) == "retry"
    message.refresh_from_db()
    assert message.next_attempt_at >= timezone.now() + datetime.timedelta(seconds=9)  # 10 s after the second
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert (message.status, message.attempts) == (DeliveryStatus.FAILED, 3)


def test_an_unreachable_endpoint_is_an_error_not_a_crash():
    WebhookEndpoint.objects.create(name="Down", url="http://127.0.0.1:9/nothing", secret="s")
    message = OutboxMessage.objects.get(event=record(client=None))
    assert outbox_deliver(message_id=message.pk) == "retry"
    message.refresh_from_db()
    assert "ConnectionError" in message.last_error


def test_emails_are_sent_once():
    event = record()
    message = OutboxMessage.objects.get(event=event)
    assert outbox_deliver(message_id=message.pk) == "delivered"
    assert outbox_deliver(message_id=message.pk) == "skipped"
    (email,) = mail.outbox
    assert email.to == ["client@example.com"]
    assert email.subject == "[Margin] Margin call on F000001"
    assert "repayment due: 53040.00" in email.body


@pytest.mark.django_db(transaction=True)
def test_events_are_recorded_only_inside_a_transaction():
    with pytest.raises(RuntimeError, match="outside a transaction"):
        event_record(type="x", summary="y", payload={})


def test_a_message_whose_task_was_lost_is_delivered_by_the_periodic_task(receiver):
    """The on-commit task never ran (a worker died with it, the broker lost it): the message is still
    pending in the database, and the periodic task delivers it."""
    WebhookEndpoint.objects.create(name="OMS", url=receiver.url, secret="s")
    message = OutboxMessage.objects.get(event=record(client=None))
    assert deliver_due_messages() == 1
    message.refresh_from_db()
    assert message.status == DeliveryStatus.DELIVERED
    assert len(receiver.received) == 1


def test_a_large_batch_of_events_gets_the_same_messages_from_the_database(receiver):
    """Above the batch threshold the messages are made in SQL from the events: the same destinations as
    one at a time — webhooks that want the type, the client once, each staff address once, the client
    never twice when staff and client share an address."""
    WebhookEndpoint.objects.create(name="OMS", url=receiver.url, secret="s")
    WebhookEndpoint.objects.create(
        name="Calls only", url=receiver.url, secret="s", event_types=["margin_call.issued"]
    )
    WebhookEndpoint.objects.create(name="Off", url=receiver.url, secret="s", is_active=False)
    shared = ClientFactory(email="desk@broker.example")  # also a staff address
    plain = ClientFactory(email="client@example.com")
    silent = ClientFactory(email="")
    kinds = [
        ("margin_call.issued", plain, True, True),
        ("margin.warning", shared, True, True),
        ("margin.restored", plain, True, False),
        ("margin.warning", silent, True, True),
        ("margin.warning", plain, False, True),
    ]
    specs = [
        EventSpec(type=t, summary=f"event {n}", payload={"n": n}, client=c, notify_client=nc, notify_staff=ns)
        for n, (t, c, nc, ns) in enumerate(kinds * 6)
    ]
    assert len(specs) > BATCH_DELIVERY_THRESHOLD
    with (
        override_settings(
            STAFF_ALERT_EMAILS=["risk@broker.example", "desk@broker.example", "risk@broker.example"]
        ),
        transaction.atomic(),
    ):
        ids = events_record(specs)
    expected = {
        "margin_call.issued": {("webhook", "OMS"), ("webhook", "Calls only"), ("email", "client@example.com"),
                               ("email", "risk@broker.example"), ("email", "desk@broker.example")},
        "margin.warning/shared": {("webhook", "OMS"), ("email", "desk@broker.example"), ("email", "risk@broker.example")},
        "margin.restored": {("webhook", "OMS"), ("email", "client@example.com")},
        "margin.warning/silent": {("webhook", "OMS"), ("email", "risk@broker.example"), ("email", "desk@broker.example")},
        "margin.warning/staff only": {("webhook", "OMS"), ("email", "risk@broker.example"), ("email", "desk@broker.example")},
    }  # fmt: skip
    names = list(expected)
    for n, event_id in enumerate(ids):
        messages = OutboxMessage.objects.filter(event_id=event_id)
        got = [(m.channel, m.endpoint.name if m.endpoint else m.recipient) for m in messages]
        assert len(got) == len(set(got)), got
        assert set(got) == expected[names[n % len(kinds)]], (n, got)
        assert all(m.status == DeliveryStatus.PENDING and m.attempts == 0 for m in messages)


# At the limit: one e-mail each; above it: one digest (30: messages made by the database, the batch path).
@pytest.mark.parametrize("alerts", [5, 6, 30])
def test_a_burst_of_alerts_reaches_staff_as_one_digest(receiver, alerts):
    """After a crash the ladder records thousands of events at once. Clients and webhooks get every one;
    staff get one digest of the batch instead of an e-mail per event once there are more than
    STAFF_ALERT_DIGEST_ABOVE of them."""
    WebhookEndpoint.objects.create(
        name="Calls only", url=receiver.url, secret="s", event_types=["margin_call.issued"]
    )
    WebhookEndpoint.objects.create(name="Everything", url=receiver.url, secret="s")  # but not the digest
    client = ClientFactory(email="client@example.com")
    specs = [
        EventSpec(type="margin_call.issued", summary=f"call {n}", payload={"n": n}, client=client)
        for n in range(alerts - 2)
    ] + [
        EventSpec(type="margin.warning", summary="warning", payload={}, client=client),
        EventSpec(type="forced_sale.requested", summary="sale", payload={}, client=client),
        EventSpec(type="margin.restored", summary="restored", payload={}, client=client, notify_staff=False),
    ]
    with (
        override_settings(STAFF_ALERT_DIGEST_ABOVE=5, STAFF_ALERT_EMAILS=["risk@broker.example"]),
        transaction.atomic(),
    ):
        ids = events_record(specs)
    to_staff = OutboxMessage.objects.filter(recipient="risk@broker.example")
    assert OutboxMessage.objects.filter(recipient="client@example.com").count() == len(specs)
    webhooks = OutboxMessage.objects.filter(channel=Channel.WEBHOOK)
    assert webhooks.count() == (alerts - 2) + len(specs)
    assert set(webhooks.values_list("event_id", flat=True)) == set(ids)  # the events asked for: no digest
    assert len(ids) == len(specs)
    if alerts == 5:
        assert to_staff.count() == 5
        return
    (message,) = to_staff
    digest = message.event
    assert digest.pk not in ids
    assert (digest.type, digest.client_id) == ("alerts.digest", None)
    calls = alerts - 2
    assert digest.summary == (
        f"{alerts} alerts at once (1 forced_sale.requested, 1 margin.warning, {calls} margin_call.issued): see "
        "the at-risk list"
    )
    assert digest.payload == {
        "alerts": alerts,
        "by_type": {"forced_sale.requested": 1, "margin.warning": 1, "margin_call.issued": calls},
        "first": ([f"call {n}" for n in range(calls)] + ["warning", "sale"])[:20],
    }
    assert outbox_deliver(message_id=message.pk) == "delivered"
    (email,) = mail.outbox
    assert email.to == ["risk@broker.example"]
    assert f"by type: forced_sale.requested: 1, margin.warning: 1, margin_call.issued: {calls}" in email.body
    assert "first:\n  call 0\n  call 1" in email.body
