"""Where webhooks may go: public addresses, and the broker's own systems listed in WEBHOOK_TRUSTED_HOSTS.

Nothing here sends anything off this machine: refused registrations send nothing at all, and deliveries go
to a receiver on 127.0.0.1 (reached by address, or by the name ``localhost``)."""

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings
from requests_hardened import ip_filter
from requests_hardened.ip_filter import InvalidIPAddress

from accounts.audit import SYSTEM
from core.exceptions import InvalidInput
from notifications.enums import DeliveryStatus
from notifications.models import OutboxMessage, WebhookEndpoint
from notifications.services import event_record, outbox_deliver, outbox_retry_failed
from notifications.webhook_endpoints import webhook_endpoint_create, webhook_endpoint_update
from tests.helpers import writes_nothing
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with webhook_receiver() as receiver:
        yield receiver


def webhook_message() -> OutboxMessage:
    with transaction.atomic():
        event = event_record(type="margin_call.issued", summary="Margin call on F000001", payload={})
    return OutboxMessage.objects.get(event=event, channel="webhook")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",  # this machine
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",  # private networks
        "https://192.168.0.10/hook",
        "http://[::ffff:10.0.0.1]/hook",  # the same, written as IPv6
        "http://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
        "http://100.64.0.1/hook",  # shared address space (carrier-grade NAT)
        "http://0.0.0.0/hook",
        "http://[::7f00:1]/hook",  # IPv4-compatible and deprecated IPv6 forms Python calls global
        "http://[::a9fe:a9fe]/latest/",
        "http://[fec0::1]/hook",
    ],
)
@override_settings(WEBHOOK_TRUSTED_HOSTS=[])
def test_an_endpoint_on_a_private_address_is_refused_with_the_reason(url):
    with writes_nothing(), pytest.raises(InvalidInput) as refused:
        webhook_endpoint_create(name="inside", url=url, actor=SYSTEM)
    assert refused.value.code == "webhook_address_not_allowed"
    assert "WEBHOOK_TRUSTED_HOSTS" in refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254\\@10.20.0.1/latest/",  # urllib3 connects to the first host, urlsplit reads the second
        "http://user:secret@10.20.0.1/hook",
        "https://anyone@hooks.broker.example/",
    ],
)
@override_settings(WEBHOOK_TRUSTED_HOSTS=["10.20.0.0/16"])
def test_a_url_with_a_user_name_or_a_backslash_is_refused(url):
    with writes_nothing(), pytest.raises(InvalidInput) as refused:
        webhook_endpoint_create(name="tricky", url=url, actor=SYSTEM)
    assert refused.value.code == "webhook_address_not_allowed"
    assert "no user name, password or backslash" in refused.value.message


@override_settings(WEBHOOK_TRUSTED_HOSTS=["10.20.0.0/16"])
def test_a_stored_tricky_url_is_delivered_only_through_the_guard():
    """A row written before the guard: the host requests would reach is the metadata service, whatever
    the trusted network the URL seems to name. The guard refuses it before any connection."""
    WebhookEndpoint.objects.create(name="old", url="http://169.254.169.254\\@10.20.0.1/latest/", secret="s")
    message = webhook_message()
    assert outbox_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert "resolves to 169.254.169.254" in message.last_error


def test_the_guard_refuses_the_ipv6_forms_python_calls_global():
    for address in ("::7f00:1", "::a9fe:a9fe", "fec0::1"):
        with pytest.raises(InvalidIPAddress):
            ip_filter.get_ip_address(address, 80, allow_loopback=False)


@pytest.mark.parametrize(
    ("host", "what"),
    [
        ("[64:ff9b::808:808]", "a private or reserved address"),  # NAT64: 8.8.8.8 through a translator
        ("[64:ff9b:1::a00:1]", "a private or reserved address"),  # local-use NAT64
        ("[2002:a00:1::1]", "a private or reserved address"),  # 6to4 of 10.0.0.1
        ("[2002:808:808::1]", "a private or reserved address"),  # 6to4 of a public address, refused too
        ("192.88.99.1", "a private or reserved address"),  # 6to4 relay anycast
        ("224.0.0.1", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("[ff02::1]", "a multicast address"),
        ("[ff0e::1]", "a multicast address"),  # global-scope multicast, which Python calls global
    ],
)
@override_settings(WEBHOOK_TRUSTED_HOSTS=[])
def test_what_delivery_refuses_is_refused_at_registration_too(host, what):
    with writes_nothing(), pytest.raises(InvalidInput) as refused:
        webhook_endpoint_create(name="odd", url=f"https://{host}/hook", actor=SYSTEM)
    assert refused.value.code == "webhook_address_not_allowed"
    assert f"{host} is {what}" in refused.value.message
    with pytest.raises(InvalidIPAddress):  # the very address delivery refuses
        ip_filter.get_ip_address(host.strip("[]"), 443, allow_loopback=False)


@override_settings(WEBHOOK_TRUSTED_HOSTS=["10.20.0.0/16", "oms.broker.internal"])
def test_public_addresses_and_trusted_hosts_are_accepted():
    for url in (
        "https://hooks.broker.example/margin",  # a name: checked when delivered, once resolved
        "https://8.8.8.8/hook",  # a public address (nothing is sent at registration)
        "http://10.20.3.4:9000/hook",  # inside a trusted network
        "http://OMS.broker.internal./hook",  # a trusted name, in any case, with the root dot
    ):
        webhook_endpoint_create(name=url, url=url, actor=SYSTEM)
    endpoint = WebhookEndpoint.objects.get(url="http://10.20.3.4:9000/hook")
    with (
        writes_nothing(),
        pytest.raises(InvalidInput, match=r"10\.21\.0\.1 is a private or reserved address"),
    ):
        webhook_endpoint_update(endpoint=endpoint, url="http://10.21.0.1/hook", actor=SYSTEM)


def test_a_delivery_to_a_host_no_longer_trusted_fails_at_once_and_can_be_sent_again(
    receiver, django_capture_on_commit_callbacks
):
    WebhookEndpoint.objects.create(name="OMS", url=receiver.url, secret="s3cret")  # on 127.0.0.1, trusted
    message = webhook_message()
    with override_settings(WEBHOOK_TRUSTED_HOSTS=[]):
        assert outbox_deliver(message_id=message.pk) == "failed"  # not retried: retrying cannot help
    message.refresh_from_db()
    assert (message.status, message.attempts) == (DeliveryStatus.FAILED, 1)
    assert message.last_error.startswith(f"refused: {receiver.url} resolves to 127.0.0.1")
    assert receiver.received == []
    with django_capture_on_commit_callbacks(execute=True):  # trusted again (the suite's setting)
        outbox_retry_failed(message=message)  # staff send it again
    message.refresh_from_db()
    assert (message.status, len(receiver.received)) == (DeliveryStatus.DELIVERED, 1)


def test_a_host_name_is_checked_once_resolved(receiver):
    """``localhost`` is a name: registration cannot know where it leads, the delivery does."""
    url = receiver.url.replace("127.0.0.1", "localhost")
    WebhookEndpoint.objects.create(name="By name", url=url, secret="s3cret")
    message = webhook_message()
    with override_settings(WEBHOOK_TRUSTED_HOSTS=["127.0.0.1"]):  # the address is trusted, not the name
        assert outbox_deliver(message_id=message.pk) == "failed"
    assert receiver.received == []
    message.refresh_from_db()
    assert message.last_error.startswith(
        f"refused: {url} resolves to "
    )  # 127.0.0.1 or ::1, as the machine says
    OutboxMessage.objects.filter(pk=message.pk).update(status=DeliveryStatus.PENDING, attempts=0)
    with override_settings(WEBHOOK_TRUSTED_HOSTS=["localhost"]):
        assert outbox_deliver(message_id=message.pk) == "delivered"
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "fe80::zz", "10.0.0.300", "*.broker.internal", "oms broker"]
)
def test_a_bad_trusted_host_entry_stops_the_platform_starting(entry):
    with override_settings(WEBHOOK_TRUSTED_HOSTS=[entry]), pytest.raises(ImproperlyConfigured) as refused:
        apps.get_app_config("notifications").ready()
    assert repr(entry) in str(refused.value)


@override_settings(STAFF_ALERT_DIGEST_ABOVE=0)
def test_a_digest_limit_below_one_stops_the_platform_starting():
    with pytest.raises(ImproperlyConfigured, match="STAFF_ALERT_DIGEST_ABOVE"):
        apps.get_app_config("notifications").ready()
