"""Staff sessions end after an idle period and at a maximum age, audited; client users' sessions do not idle
out (the portal decides its own)."""

import datetime

import pytest
import time_machine
from django.test import Client

from accounts.models import AuditEvent
from tests.accounts.factories import ClientFactory, StaffFactory, UserFactory
from tests.helpers import login_as

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)


def at(minutes: float):
    return time_machine.travel(START + datetime.timedelta(minutes=minutes), tick=False)


@pytest.fixture
def staff(settings):
    settings.STAFF_SESSION_IDLE_SECONDS = 15 * 60
    settings.SESSION_COOKIE_AGE = 10 * 3600
    client = Client()
    user = StaffFactory(role="Risk officer")
    with at(0):
        login_as(client, user)
        assert client.get("/admin/").status_code == 200
    client.user = user
    return client


def test_a_staff_session_ends_after_the_idle_period(staff):
    with at(14):
        assert staff.get("/admin/").status_code == 200
    with at(28):  # 14 minutes after the last request: still within the idle period
        assert staff.get("/admin/").status_code == 200
    with at(44):
        response = staff.get("/admin/facilities/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=%2Fadmin%2Ffacilities%2F"
    assert "_auth_user_id" not in staff.session
    event = AuditEvent.objects.get(action="session.expired")
    assert (event.actor, event.after) == (staff.user, {"reason": "idle"})


def test_a_staff_session_ends_at_its_maximum_age_however_busy(staff):
    for minute in range(10, 600, 10):
        with at(minute):
            assert staff.get("/admin/").status_code == 200
    with at(601):
        assert staff.get("/admin/").status_code == 302
    assert AuditEvent.objects.get(action="session.expired").after == {"reason": "max_age"}


def test_an_expired_staff_session_gets_no_answer_from_the_api(staff):
    with at(1):
        assert staff.get("/api/v1/clients/").status_code == 200
    with at(30):
        response = staff.get("/api/v1/clients/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_client_users_session_does_not_idle_out(settings):
    settings.STAFF_SESSION_IDLE_SECONDS = 15 * 60
    client = Client()
    user = UserFactory(client=ClientFactory())
    user.save()  # the factory leaves the password it set unsaved
    with at(0):
        login_as(client, user)
        assert client.get("/api/v1/clients/").status_code == 200
    with at(60):
        assert client.get("/api/v1/clients/").status_code == 200
    assert not AuditEvent.objects.filter(action="session.expired").exists()
