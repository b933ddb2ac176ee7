import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest, Client, User
from demo.seed import DEMO_LOGINS, DEMO_STAFF, DEMO_TOTP_SECRET, seed_demo
from tests.helpers import row_counts

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def test_seed_demo_is_idempotent_and_its_logins_work(client):
    messages = []
    seed_demo(messages.append)
    counts = row_counts()
    seed_demo(messages.append)
    assert row_counts() == counts
    assert Client.objects.count() >= 5
    assert ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count() == 1
    code = pyotp.TOTP(DEMO_TOTP_SECRET).now()
    for login in DEMO_LOGINS:
        response = client.post(
            reverse("admin:login") if login in DEMO_STAFF else "/api/auth/login/",
            {"username": login.username, "password": login.password},
        )
        assert response.status_code == 302, login.username
        user = User.objects.get(username=login.username)
        if user.is_staff:  # enrolled with the demo's printed secret
            assert client.post(reverse("accounts:second_factor_verify"), {"code": code}).status_code == 302
            assert client.get(reverse("admin:index")).status_code == 200
        client.post(reverse("admin:logout"))


def test_the_demo_prints_the_staff_second_factor_code(capsys):
    call_command("demo_totp_code")
    printed = capsys.readouterr().out
    assert printed.split()[0] in {
        pyotp.TOTP(DEMO_TOTP_SECRET).at(time.time() + offset) for offset in (-30, 0)
    }
    assert DEMO_TOTP_SECRET in printed


SETTINGS_ENV = {
    "PATH": "/usr/bin:/bin",
    "DJANGO_SECRET_KEY": "x",
    "DJANGO_ALLOWED_HOSTS": "example.com",
    "DATABASE_URL": "postgres://user:password@127.0.0.1:5/margin",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6/0",
    "PRICE_VENUES": "[]",
    "FORCED_SALE_VENUE": "{}",
}


@pytest.mark.parametrize(
    ("module", "installed"),
    [
        ("config.settings.local", True),
        ("config.settings.test", True),
        ("config.settings.production", False),
        ("config.settings.bench", False),
    ],
)
def test_only_the_local_and_test_settings_install_the_demo(module, installed):
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print('demo' in settings.INSTALLED_APPS)"],
        env={**SETTINGS_ENV, "DJANGO_SETTINGS_MODULE": module},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == str(installed)


def test_without_the_demo_no_venue_is_configured():
    """Production and bench name their venues or have none: the demo's fake venues are not a default."""
    from config.settings import base

    assert (base.PRICE_VENUES, base.FORCED_SALE_VENUE) == ([], {})


def test_the_demo_has_a_client_with_an_open_call_and_a_calm_one(client):
    from financing.models import MarginCall
    from tests.helpers import login_as

    seed_demo(lambda message: None)
    login_as(client, User.objects.get(username="client2"))
    call = MarginCall.objects.get(facility__client__reference="DEMO08")
    page = client.get(reverse("portal:overview", args=[call.facility_id])).content.decode()
    assert f"Margin call on {call.facility.reference}" in page
    login_as(client, User.objects.get(username="client1"))
    home = client.get("/portal/")
    page = client.get(home["Location"]).content.decode()
    assert "Within limits" in page
    assert "Margin call on" not in page
