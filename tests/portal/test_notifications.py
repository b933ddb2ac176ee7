"""The notifications inbox: the client's own events, read and unread."""

import pytest
from django.urls import reverse

from notifications.models import Event
from portal.models import NotificationRead
from tests.helpers import login_as
from tests.portal.conftest import btc_at

pytestmark = pytest.mark.django_db


def test_the_client_s_events_are_unread_until_read_and_can_be_unread_again(signed_in, facility, owner):
    btc_at("94000")  # a warning
    btc_at("80000")  # a margin call
    html = signed_in.get(reverse("portal:notifications")).content.decode()
    assert html.count('class="badge">New<') == 2
    assert "Margin call" in html
    assert 'class="badge">2<' in html  # the count in the menu
    call = Event.objects.get(type="margin_call.issued")
    response = signed_in.post(reverse("portal:notification_mark", args=[call.pk]), {"read": "1"})
    assert response["Location"] == reverse("portal:notifications")
    html = signed_in.get(reverse("portal:notifications"), {"show": "unread"}).content.decode()
    assert html.count('class="badge">New<') == 1  # the warning only
    assert NotificationRead.objects.filter(user=owner, event=call).exists()
    signed_in.post(reverse("portal:notification_mark", args=[call.pk]), {"read": "0"})
    assert not NotificationRead.objects.filter(user=owner).exists()
    signed_in.post(reverse("portal:notifications_read_all"))
    assert NotificationRead.objects.filter(user=owner).count() == 2
    html = signed_in.get(reverse("portal:notifications")).content.decode()
    assert 'class="badge">New<' not in html


def test_another_client_s_events_are_neither_listed_nor_marked(client, facility, stranger):
    btc_at("80000")
    login_as(client, stranger)
    html = client.get(reverse("portal:notifications")).content.decode()
    assert facility.reference not in html
    event = Event.objects.filter(client=facility.client).first()
    assert client.post(reverse("portal:notification_mark", args=[event.pk]), {"read": "1"}).status_code == 404
    assert not NotificationRead.objects.exists()


def test_marking_is_a_post_and_a_back_link_elsewhere_is_not_followed(signed_in, facility):
    btc_at("94000")
    event = Event.objects.get()
    url = reverse("portal:notification_mark", args=[event.pk])
    assert signed_in.get(url).status_code == 405
    response = signed_in.post(url, {"read": "1", "back": "https://evil.example/"})
    assert response["Location"] == reverse("portal:notifications")
