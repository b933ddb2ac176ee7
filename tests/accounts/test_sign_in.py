"""Signing in through the real login views: lockout after repeated failures (per username and per address),
the right password refused while locked, staff lifting a lockout, and every attempt in the audit trail."""

import datetime

import pytest
import time_machine
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from accounts import sign_in
from accounts.models import AuditEvent
from core.exceptions import PermissionRefused
from tests.accounts.factories import StaffFactory, UserFactory
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

PASSWORD = "pass"
LOGIN_PAGES = ["/admin/login/", "/api/auth/login/"]


def attempt(client: Client, page: str, username: str, password: str):
    return client.post(page, {"username": username, "password": password, "next": "/admin/"})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def actions(user=None) -> list[str]:
    events = AuditEvent.objects.filter(action__startswith="login.")
    if user is not None:
        events = events.filter(target_id=str(user.pk))
    return list(events.order_by("created_at", "pk").values_list("action", flat=True))


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_thirty_wrong_passwords_lock_the_account_and_the_right_one_is_refused(page, settings):
    settings.AXES_FAILURE_LIMIT = 5
    officer = StaffFactory(role="Risk officer")
    client = Client()
    for _ in range(30):
        response = attempt(client, page, officer.username, "wrong")
        assert not logged_in(client)
    assert response.status_code == 429
    response = attempt(client, page, officer.username, PASSWORD)
    assert response.status_code == 429
    assert "Login locked" in response.content.decode()
    assert not logged_in(client)
    assert actions(officer) == ["login.failed"] * 5 + ["login.locked_out"] + ["login.failed"] * 26
    locked = AuditEvent.objects.get(action="login.locked_out")
    assert locked.actor is None
    assert locked.actor_label == "anonymous@127.0.0.1"
    assert locked.after["username"] == officer.username
    assert locked.after["failures"] == 5
    assert locked.after["locked_for_seconds"] == 30 * 60
    refused = AuditEvent.objects.filter(action="login.failed").order_by("-created_at", "-pk").first()
    assert refused.after["reason"] == "locked out"


def test_the_lockout_ends_after_the_cool_off(settings):
    settings.AXES_FAILURE_LIMIT = 5
    officer = StaffFactory(role="Credit officer")
    client = Client()
    start = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        for _ in range(30):
            attempt(client, "/admin/login/", officer.username, "wrong")
    with time_machine.travel(start + datetime.timedelta(minutes=29), tick=False):
        assert attempt(client, "/admin/login/", officer.username, PASSWORD).status_code == 429
    with time_machine.travel(start + datetime.timedelta(minutes=31), tick=False):
        assert attempt(client, "/admin/login/", officer.username, PASSWORD).status_code == 302
        assert logged_in(client)
    assert actions(officer)[-1] == "login.succeeded"


def test_staff_lift_a_lockout_and_it_is_audited(settings):
    settings.AXES_FAILURE_LIMIT = 5
    officer = StaffFactory(role="Risk officer")
    administrator = StaffFactory(role="Administrator")
    for _ in range(30):
        attempt(Client(), "/admin/login/", officer.username, "wrong")
    forgotten = sign_in.login_lockout_lift_for_user(user=officer, actor=administrator)
    assert forgotten == 5
    lifted = AuditEvent.objects.get(action="login.lockout_lifted")
    assert lifted.actor == administrator
    assert lifted.target_id == str(officer.pk)
    assert lifted.before["failures"] == 5
    client = Client()
    assert attempt(client, "/admin/login/", officer.username, PASSWORD).status_code == 302
    assert logged_in(client)


def test_an_administrator_lifts_a_lockout_from_the_user_list(client, settings):
    settings.AXES_FAILURE_LIMIT = 5
    officer = StaffFactory(role="Risk officer")
    for _ in range(6):
        attempt(Client(), "/admin/login/", officer.username, "wrong")
    login_as(client, StaffFactory(role="Administrator"))
    response = client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "lift_login_lockout", "_selected_action": [officer.pk]},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username=officer.username).exists()
    assert AuditEvent.objects.filter(action="login.lockout_lifted", target_id=str(officer.pk)).exists()


def test_deleting_access_attempts_in_the_admin_lifts_the_lockout_audited(client, settings):
    settings.AXES_FAILURE_LIMIT = 5
    officer = StaffFactory(role="Risk officer")
    for _ in range(6):
        attempt(Client(), "/admin/login/", officer.username, "wrong")
    login_as(client, StaffFactory(role="Administrator"))
    row = AccessAttempt.objects.get(username=officer.username)
    response = client.post(reverse("admin:axes_accessattempt_delete", args=[row.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert AuditEvent.objects.get(action="login.lockout_lifted").before["ip_address"] == "127.0.0.1"


@pytest.mark.parametrize("role", ["Risk officer", "Credit officer", "Operations", "Compliance"])
def test_only_administrators_lift_a_lockout(role, settings):
    settings.AXES_FAILURE_LIMIT = 5
    officer = StaffFactory(role="Risk officer")
    for _ in range(6):
        attempt(Client(), "/admin/login/", officer.username, "wrong")
    colleague = StaffFactory(role=role)
    with writes_nothing(), pytest.raises(PermissionRefused):
        sign_in.login_lockout_lift_for_user(user=officer, actor=colleague)


def test_one_address_trying_many_usernames_is_locked_out(settings):
    settings.AXES_FAILURE_LIMIT = 5
    victims = [StaffFactory() for _ in range(5)]
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for victim in victims:
        attempt(attacker, "/admin/login/", victim.username, "wrong")
    someone = StaffFactory()
    assert attempt(attacker, "/admin/login/", someone.username, PASSWORD).status_code == 429
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert attempt(elsewhere, "/admin/login/", someone.username, PASSWORD).status_code == 302
    assert AuditEvent.objects.get(action="login.locked_out").actor_label == "anonymous@203.0.113.9"


def test_a_username_is_locked_out_whatever_the_address(settings):
    settings.AXES_FAILURE_LIMIT = 5
    officer = StaffFactory()
    for number in range(5):
        attempt(Client(REMOTE_ADDR=f"203.0.113.{number}"), "/admin/login/", officer.username, "wrong")
    assert (
        attempt(Client(REMOTE_ADDR="198.51.100.7"), "/admin/login/", officer.username, PASSWORD).status_code
        == 429
    )


def test_a_login_and_a_failure_are_audited(settings):
    officer = StaffFactory()
    client = Client(HTTP_USER_AGENT="pytest-browser")
    attempt(client, "/api/auth/login/", officer.username, "wrong")
    attempt(client, "/api/auth/login/", officer.username, PASSWORD)
    failed, succeeded = AuditEvent.objects.filter(action__startswith="login.").order_by("created_at", "pk")
    assert (failed.action, succeeded.action) == ("login.failed", "login.succeeded")
    assert failed.target_id == str(officer.pk)
    assert failed.after["path"] == "/api/auth/login/"
    assert succeeded.actor == officer
    assert succeeded.after == {
        "ip_address": "127.0.0.1",
        "path": "/api/auth/login/",
        "user_agent": "pytest-browser",
    }


def test_a_failure_for_an_unknown_username_is_audited_without_a_target():
    attempt(Client(), "/admin/login/", "nobody-here", "wrong")
    event = AuditEvent.objects.get(action="login.failed")
    assert event.target_id == ""
    assert event.after["username"] == "nobody-here"


def test_a_client_user_is_locked_out_too(settings):
    settings.AXES_FAILURE_LIMIT = 5
    user = UserFactory()
    user.save()  # the factory leaves the password it set unsaved
    client = Client()
    for _ in range(5):
        attempt(client, "/api/auth/login/", user.username, "wrong")
    assert attempt(client, "/api/auth/login/", user.username, PASSWORD).status_code == 429


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "10.0.0.2"),  # no proxy: the header is the caller's to forge, ignored
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a forged entry on the left is not taken
        (2, "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"),
        (2, "", "10.0.0.2"),
    ],
)
def test_the_callers_address_is_read_past_trusted_proxies_only(rf, settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert sign_in.client_ip_address(request) == expected
