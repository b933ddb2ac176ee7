"""A client's own second factor: enrolled by choice, then asked at sign-in and before moving money."""

import pyotp
import pytest
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.helpers import login_as

pytestmark = pytest.mark.django_db


def enrol(client) -> list[str]:
    html = client.get(reverse("portal:security")).content.decode()
    secret = html.split("<code>", 1)[1].split("</code>", 1)[0]
    response = client.post(reverse("portal:security"), {"code": pyotp.TOTP(secret).now()})
    html = response.content.decode()
    assert "Your recovery codes" in html
    return [part.split("</code>")[0] for part in html.split("<li><code>")[1:]]


def test_a_client_enrols_and_is_then_asked_for_a_code_at_sign_in(client, signed_in, facility, owner):
    assert "Set up a second factor" in signed_in.get(reverse("portal:security")).content.decode()
    codes = enrol(signed_in)
    assert len(codes) == 10
    assert TOTPDevice.objects.get(user=owner).confirmed
    fresh = type(client)()
    login_as(fresh, owner)  # a new sign-in: not verified yet
    overview = reverse("portal:overview", args=[facility.pk])
    response = fresh.get(overview)
    assert response["Location"].startswith(reverse("portal:verify"))
    response = fresh.post(response["Location"], {"code": "000000", "next": overview})
    assert "not right" in response.content.decode()
    response = fresh.post(reverse("portal:verify"), {"code": codes[0], "next": overview})
    assert response["Location"] == overview
    assert fresh.get(overview).status_code == 200


def test_an_enrolled_client_gives_a_code_before_money_moves(signed_in, facility):
    from accounts.audit import SYSTEM
    from collateral.custody import custody_holding_receive
    from tests.collateral.factories import asset

    codes = enrol(signed_in)
    custody_holding_receive(
        client=facility.client, asset=asset("HKD"), quantity="1000", actor=SYSTEM, external_reference="in"
    )
    url = reverse("portal:action", args=[facility.pk, "repay"])
    html = signed_in.post(url, {"token": "t", "step": "preview", "amount": "100"}).content.decode()
    assert 'name="code"' in html
    response = signed_in.post(url, {"token": "t", "step": "confirm", "amount": "100", "code": "123456"})
    assert "Not done" in response.content.decode()
    from financing.models import Repayment

    assert not Repayment.objects.exists()
    response = signed_in.post(url, {"token": "t", "step": "confirm", "amount": "100", "code": codes[1]})
    assert response.status_code == 302


def test_a_client_without_a_second_factor_is_not_asked(signed_in, facility):
    assert signed_in.get(reverse("portal:overview", args=[facility.pk])).status_code == 200
    html = signed_in.post(
        reverse("portal:action", args=[facility.pk, "draw-down"]),
        {"token": "t", "step": "preview", "amount": "1"},
    ).content.decode()
    assert 'name="code"' not in html
