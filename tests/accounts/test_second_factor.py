"""The second factor, through the real pages: a member of staff without an authenticator enrols after their
password and gets recovery codes once; an enrolled one gives a code at each login; the admin and the API
refuse a staff session until then; codes are throttled; an administrator resets a lost one."""

import base64
import re
import time

import pyotp
import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import second_factor
from accounts.models import AuditEvent
from core.exceptions import PermissionRefused
from tests.accounts.factories import ClientFactory, StaffFactory, UserFactory
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

ENROL = "/admin/second-factor/enrol/"
VERIFY = "/admin/second-factor/"


def password_login(client: Client, user, page: str = "/admin/login/") -> None:
    response = client.post(page, {"username": user.username, "password": "pass", "next": "/admin/"})
    assert response.status_code == 302, response.content.decode()[:500]


def enrolled(user) -> pyotp.TOTP:
    """Give ``user`` an authenticator; return the app's side of it."""
    secret = pyotp.random_base32()
    key = base64.b32decode(secret).hex()
    TOTPDevice.objects.create(user=user, name="authenticator", key=key, confirmed=True)
    return pyotp.TOTP(secret)


def actions(user) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(user.pk))
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    )


def test_a_member_of_staff_without_an_authenticator_enrols_after_the_password():
    officer = StaffFactory(role="Risk officer")
    client = Client()
    password_login(client, officer)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == f"{ENROL}?next=%2Fadmin%2F"
    page = client.get(response["Location"]).content.decode()
    secret = re.search(r"Secret: <code[^>]*>([A-Z2-7]+)</code>", page).group(1)
    assert "<svg" in page  # the QR code is drawn here: no image from anywhere else
    assert "<img" not in page
    response = client.post(ENROL, {"code": pyotp.TOTP(secret).now(), "next": "/admin/"})
    codes = re.findall(r"<li>([a-z2-7]{8})</li>", response.content.decode())
    assert len(codes) == 10
    assert "shown only this once" in response.content.decode()
    assert client.get("/admin/").status_code == 200
    assert sorted(StaticDevice.objects.get(user=officer).token_set.values_list("token", flat=True)) == sorted(
        codes
    )
    assert actions(officer) == ["login.succeeded", "second_factor.enrolled"]


def test_a_wrong_code_does_not_enrol():
    officer = StaffFactory(role="Risk officer")
    client = Client()
    password_login(client, officer)
    client.get(ENROL)
    response = client.post(ENROL, {"code": "000000"})
    assert "That code is not right" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=officer, confirmed=True).exists()
    assert client.get("/admin/").status_code == 302
    assert actions(officer)[-1] == "second_factor.failed"


def test_an_enrolled_member_of_staff_gives_a_code_at_each_login():
    officer = StaffFactory(role="Credit officer")
    app = enrolled(officer)
    client = Client()
    password_login(client, officer)
    response = client.get("/admin/facilities/")
    assert response["Location"] == f"{VERIFY}?next=%2Fadmin%2Ffacilities%2F"
    response = client.post(VERIFY, {"code": app.now(), "next": "/admin/"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert actions(officer) == ["login.succeeded", "second_factor.verified"]


def test_a_wrong_code_is_refused_then_throttled():
    officer = StaffFactory(role="Credit officer")
    app = enrolled(officer)
    client = Client()
    password_login(client, officer)
    response = client.post(VERIFY, {"code": "123456" if app.now() != "123456" else "654321"})
    assert "That code is not right" in response.content.decode()
    response = client.post(VERIFY, {"code": app.now()})  # at once: django-otp makes the next try wait
    assert "Too many wrong codes" in response.content.decode()
    assert client.get("/admin/").status_code == 302
    assert actions(officer) == ["login.succeeded", "second_factor.failed", "second_factor.failed"]


def test_a_recovery_code_signs_in_once():
    officer = StaffFactory(role="Operations")
    enrolled(officer)
    codes = second_factor.recovery_codes_renew(user=officer)
    first = Client()
    password_login(first, officer)
    assert first.post(VERIFY, {"code": codes[0].upper()}).status_code == 302
    assert first.get("/admin/").status_code == 200
    second = Client()
    password_login(second, officer)
    response = second.post(VERIFY, {"code": codes[0]})
    assert "not right" in response.content.decode()
    verified = AuditEvent.objects.get(action="second_factor.verified")
    assert verified.after == {"with": "recovery code", "recovery_codes_left": 9}


def test_new_recovery_codes_replace_the_old_ones():
    officer = StaffFactory(role="Operations")
    app = enrolled(officer)
    old = second_factor.recovery_codes_renew(user=officer)
    client = Client()
    password_login(client, officer)
    client.post(VERIFY, {"code": app.now()})
    response = client.post(reverse("accounts:recovery_codes"))
    new = re.findall(r"<li>([a-z2-7]{8})</li>", response.content.decode())
    assert len(new) == 10
    assert not StaticDevice.objects.get(user=officer).token_set.filter(token__in=old).exists()
    assert actions(officer)[-1] == "second_factor.recovery_codes_renewed"


def test_the_admin_refuses_an_unverified_staff_session_even_without_the_middleware(settings):
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "accounts.middleware.StaffSessionMiddleware"
    ]
    officer = StaffFactory(role="Risk officer")
    client = Client()
    password_login(client, officer)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("page", ["/admin/login/", "/api/auth/login/"])
def test_the_api_refuses_an_unverified_staff_session(page):
    officer = StaffFactory(role="Credit officer")
    app = enrolled(officer)
    client = Client()
    password_login(client, officer, page)
    response = client.get("/api/v1/clients/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "second_factor_required"
    client.post(VERIFY, {"code": app.now()})
    assert client.get("/api/v1/clients/").status_code == 200


def test_a_client_user_has_no_second_factor_to_give():
    user = UserFactory(client=ClientFactory())
    user.save()  # the factory leaves the password it set unsaved
    client = Client()
    password_login(client, user, "/api/auth/login/")
    assert client.get("/api/v1/clients/").status_code == 200


def test_the_next_page_stays_on_this_site():
    officer = StaffFactory(role="Credit officer")
    app = enrolled(officer)
    client = Client()
    password_login(client, officer)
    response = client.post(VERIFY, {"code": app.now(), "next": "https://elsewhere.example/"})
    assert response["Location"] == "/admin/"


def test_an_administrator_resets_a_lost_second_factor_and_the_user_enrols_again(client):
    officer = StaffFactory(role="Risk officer")
    enrolled(officer)
    second_factor.recovery_codes_renew(user=officer)
    administrator = StaffFactory(role="Administrator")
    login_as(client, administrator)
    response = client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "reset_second_factor", "_selected_action": [officer.pk]},
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=officer).exists()
    assert not StaticDevice.objects.filter(user=officer).exists()
    reset = AuditEvent.objects.get(action="second_factor.reset")
    assert (reset.actor, reset.target_id) == (administrator, str(officer.pk))
    assert reset.before == {"authenticator": 1, "recovery codes": 1}
    again = Client()
    password_login(again, officer)
    assert again.get("/admin/")["Location"].startswith(ENROL)


def test_nobody_resets_their_own_second_factor_and_others_may_not_at_all():
    administrator = StaffFactory(role="Administrator")
    enrolled(administrator)
    officer = StaffFactory(role="Risk officer")
    enrolled(officer)
    with writes_nothing(), pytest.raises(PermissionRefused, match="Another administrator"):
        second_factor.second_factor_reset(user=administrator, actor=administrator)
    with writes_nothing(), pytest.raises(PermissionRefused):
        second_factor.second_factor_reset(user=administrator, actor=officer)


def test_a_code_is_not_taken_twice():
    officer = StaffFactory(role="Credit officer")
    app = enrolled(officer)
    code = app.at(time.time())
    first = Client()
    password_login(first, officer)
    assert first.post(VERIFY, {"code": code}).status_code == 302
    second = Client()
    password_login(second, officer)
    assert "not right" in second.post(VERIFY, {"code": code}).content.decode()
