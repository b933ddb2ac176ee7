"""Event keys are time-ordered: UUID version 7 (RFC 9562), a time in milliseconds in their first 48 bits. Each
new event, and each of its messages' entries in the unique index that leads with the event, goes to the right
edge of the index, not to a random page of it. Drawn in Python they are in order (``uuid6`` counts on from the
last millisecond within a burst, so their time may run ahead of the clock); drawn by the database, their time
is the clock's."""

import uuid

import pytest
from django.db import connection, transaction

from notifications.models import Event
from notifications.services import EventSpec, events_record
from tests.accounts.factories import ClientFactory

pytestmark = pytest.mark.django_db


def milliseconds(key: uuid.UUID) -> int:
    return key.int >> 80


def assert_version_7(key: uuid.UUID) -> None:
    assert (key.version, key.variant) == (7, uuid.RFC_4122)


def test_an_event_made_through_the_orm_gets_a_time_ordered_key():
    first = Event.objects.create(type="margin.warning", summary="F000001 is at 85.00%", payload={})
    second = Event.objects.create(type="margin.warning", summary="F000002 is at 85.00%", payload={})
    assert_version_7(first.pk)
    assert first.pk < second.pk


def test_events_recorded_together_get_keys_in_the_order_they_were_recorded():
    client = ClientFactory()
    specs = [
        EventSpec(
            type="margin.warning",
            summary=f"F{i:06} is at 85.00%",
            payload={},
            client=client,
            notify_staff=False,
        )
        for i in range(50)
    ]
    with transaction.atomic():
        first = events_record(specs)
    with transaction.atomic():
        second = events_record(specs[:5])
    for key in [*first, *second]:
        assert_version_7(key)
    assert first + second == sorted(first + second)
    assert set(Event.objects.values_list("pk", flat=True)) == set(first + second)


def test_the_database_draws_time_ordered_keys():
    """``uuid_v7()`` (migration 0002), which the set-based ladder writes its events with."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, uuid_v7()")
        before, first = cursor.fetchone()
        cursor.execute("SELECT pg_sleep(0.002)")
        cursor.execute("SELECT uuid_v7(), floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
        second, after = cursor.fetchone()
        cursor.execute(
            "SELECT COUNT(DISTINCT k), COUNT(*) FROM (SELECT uuid_v7() AS k FROM generate_series(1, 10000)) s"
        )
        distinct, drawn = cursor.fetchone()
    for key in (first, second):
        assert_version_7(key)
        assert before <= milliseconds(key) <= after
    assert milliseconds(second) > milliseconds(first)
    assert second > first
    assert distinct == drawn == 10000  # a fresh key for every row, not one for the statement
