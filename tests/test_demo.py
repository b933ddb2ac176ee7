import pytest
from django.urls import reverse

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest, Client, User
from financing.demo import DEMO_LOGINS, seed_demo
from tests.helpers import row_counts

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_its_logins_work(client):
    messages = []
    seed_demo(messages.append)
    counts = row_counts()
    seed_demo(messages.append)
    assert row_counts() == counts
    assert Client.objects.count() >= 5
    assert ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count() == 1
    for login in DEMO_LOGINS:
        assert client.login(username=login.username, password=login.password), login.username
        user = User.objects.get(username=login.username)
        if user.is_staff:
            assert client.get(reverse("admin:index")).status_code == 200
        client.logout()
