"""The shared test helpers see what they claim to: ``writes_nothing`` watches every table of every app of
this repository."""

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from api.models import IdempotencyRecord
from notifications.models import WebhookEndpoint
from tests.helpers import REPOSITORY, project_apps, project_tables, row_counts, writes_nothing

pytestmark = pytest.mark.django_db


def test_the_project_apps_are_the_apps_whose_code_is_in_the_repository():
    in_repository = {path.parent.name for path in REPOSITORY.glob("*/apps.py")}

    assert set(project_apps()) == in_repository
    assert {"accounts", "api", "collateral", "financing", "ledger", "notifications"} <= in_repository
    assert not {"admin", "auth", "contenttypes", "django_celery_beat"} & set(project_apps())


def test_every_table_of_the_project_apps_is_counted():
    tables = project_tables()

    assert {"notifications_event", "notifications_outboxmessage", "api_idempotencyrecord"} <= set(tables)
    assert "accounts_user_groups" in tables  # a many-to-many table too
    assert "auth_group" not in tables
    assert set(row_counts()) == set(tables)


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda: WebhookEndpoint.objects.create(name="Broker", url="http://127.0.0.1:9/", secret="s"),
            id="notifications",
        ),
        pytest.param(
            lambda: IdempotencyRecord.objects.create(
                credential="user:1", key="k", method="POST", path="/api/v1/drawdowns/", fingerprint="f"
            ),
            id="api",
        ),
        pytest.param(
            lambda: User.objects.create_user(username="u").groups.add(Group.objects.create(name="g")),
            id="accounts-many-to-many",
        ),
    ],
)
def test_writes_nothing_fails_on_a_row_written_to_any_project_table(write):
    with pytest.raises(AssertionError, match="rows were written"), writes_nothing():
        write()


def test_writes_nothing_passes_when_nothing_is_written():
    User.objects.create_user(username="somebody")
    with writes_nothing():
        assert User.objects.filter(username="nobody").delete()[0] == 0
        assert User.objects.count() == 1
