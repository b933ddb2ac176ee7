import pytest
from django.contrib.admin.sites import site
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from accounts.audit import SYSTEM, audit_event_record
from accounts.models import AuditEvent, Client
from tests.accounts.factories import ClientFactory, StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    client = ClientFactory()
    return audit_event_record(actor=SYSTEM, action="test.happened", target=client, after={"x": "1"})


def test_events_cannot_be_changed_through_the_model(event):
    event.action = "rewritten"
    with pytest.raises(PermissionError, match="append-only"):
        event.save()
    with pytest.raises(PermissionError, match="append-only"):
        event.delete()


def test_postgresql_refuses_updates_and_deletes_that_bypass_the_model(event):
    """Refused to the application's role by privilege; the owner meets the append-only trigger
    (tests/core/test_database_roles.py)."""
    denied = "permission denied for table accounts_auditevent"
    with pytest.raises(DatabaseError, match=denied), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="rewritten")
    with (
        pytest.raises(DatabaseError, match=denied),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM accounts_auditevent WHERE id = %s", [event.pk])
    event.refresh_from_db()
    assert event.action == "test.happened"


@pytest.mark.django_db(transaction=True)
def test_events_are_written_only_inside_a_transaction():
    with pytest.raises(RuntimeError, match="outside a transaction"):
        audit_event_record(actor=SYSTEM, action="loose")
    assert not AuditEvent.objects.exists()


def test_the_admin_is_read_only_even_for_an_administrator(event):
    admin_user = StaffFactory(role="Administrator", is_superuser=True)
    request = RequestFactory().get("/")
    request.user = admin_user
    model_admin = site._registry[AuditEvent]
    assert model_admin.has_view_permission(request, event)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)


def test_system_actor_is_labelled(event):
    assert event.actor is None
    assert event.actor_label == "system"
    assert event.target_repr == str(Client.objects.get(pk=event.target_id))
