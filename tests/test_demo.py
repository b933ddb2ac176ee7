import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpRequest
from django.urls import reverse

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest, Client, User
from demo.seed import DEMO_LOGINS, seed_demo
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
    for login in DEMO_LOGINS:
        assert client.login(request=HttpRequest(), username=login.username, password=login.password), (
            login.username
        )
        user = User.objects.get(username=login.username)
        if user.is_staff:
            assert client.get(reverse("admin:index")).status_code == 200
        client.logout()


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
