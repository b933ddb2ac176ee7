"""Password reset by e-mail, for client users only."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import AuditEvent
from tests.web.factories import ClientUserFactory, StaffFactory

pytestmark = pytest.mark.django_db


def test_a_client_resets_their_password_through_the_mailed_link(client):
    user = ClientUserFactory(email="harbour@client.example")
    assert "Forgot your password?" in client.get(reverse("web:sign_in")).content.decode()
    response = client.post(reverse("portal:password_reset"), {"email": "harbour@client.example"})
    assert response["Location"] == reverse("portal:password_reset_done")
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/portal/password-reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    response = client.post(
        form.redirect_chain[-1][0], {"new_password1": "a-new-pass-2026!", "new_password2": "a-new-pass-2026!"}
    )
    assert response["Location"] == reverse("portal:password_reset_complete")
    user.refresh_from_db()
    assert user.check_password("a-new-pass-2026!")
    assert AuditEvent.objects.filter(action="user.password_reset").count() == 1
    assert "has been used or has expired" in client.get(link, follow=True).content.decode()


def test_staff_and_unknown_addresses_get_no_link_and_the_page_says_the_same(client):
    StaffFactory(email="risk@broker.example")
    for email in ["risk@broker.example", "nobody@client.example"]:
        response = client.post(reverse("portal:password_reset"), {"email": email})
        assert response["Location"] == reverse("portal:password_reset_done")
    assert mail.outbox == []
