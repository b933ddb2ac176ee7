"""The bulk-write helpers: the rows they write are the rows ``save()`` would."""

import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import NamedTuple

import pytest
from django.db import connection, transaction
from djmoney.money import Money

from core.db import bigint_array, bulk_insert_rows, bulk_insert_values, bulk_insert_with_pks, id_in
from financing.enums import MarginCallStatus
from financing.models import MarginCall
from notifications.models import Event
from tests.accounts.factories import ClientFactory
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("count", [3, 150])  # placeholders, and one array parameter above a hundred ids
def test_id_in_selects_exactly_the_given_rows(count):
    clients = [ClientFactory() for _ in range(count + 5)]
    wanted = [c.pk for c in clients[:count]]
    found = type(clients[0]).objects.filter(id_in("pk", wanted)).values_list("pk", flat=True)
    assert sorted(found) == sorted(wanted)


@pytest.mark.parametrize("ids", [[], [7], [3, -2, 0, 2**63 - 1]])
def test_ids_sent_as_the_text_of_an_array_arrive_as_given(ids):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::bigint[]", [bigint_array(ids)])
        assert cursor.fetchone()[0] == ids


def test_only_integers_go_into_the_text_of_an_array():
    with pytest.raises(ValueError, match="invalid literal"):
        bigint_array([1, "2}, {3"])


class CallRow(NamedTuple):
    facility_id: int
    ratio_at_issue: Decimal
    debt_at_issue: Decimal
    margin_value_at_issue: Decimal
    repayment_due: Decimal
    top_up_due: Decimal
    deadline: datetime.datetime


def test_rows_given_in_part_get_the_defaults_save_would_give(market):
    """``bulk_insert_values``: a callable default is called for each row (a fresh UUID each), a constant
    default and ``auto_now_add`` fill the rest; ``bulk_insert_with_pks`` hands each item its key."""
    with transaction.atomic():
        bulk_insert_values(
            Event,
            [
                {"type": "test.one", "summary": "one", "payload": {}},
                {"summary": "two", "payload": {}, "type": "test.two"},  # by name: the order is the row's own
            ],
        )
    events = list(Event.objects.order_by("type"))
    assert [e.type for e in events] == ["test.one", "test.two"]
    assert events[0].pk != events[1].pk
    assert all(e.occurred_at is not None and e.client_id is None and e.subject_type == "" for e in events)

    items = [
        SimpleNamespace(pk=None, facility=facility_with_pool(holdings={"BTC": "1"}), debt=Decimal(debt))
        for debt in ("265200.00", "1.00")
    ]
    with transaction.atomic():
        bulk_insert_with_pks(
            MarginCall,
            items,
            lambda item: CallRow(
                facility_id=item.facility.pk,
                ratio_at_issue=Decimal("1.05000000"),
                debt_at_issue=item.debt,
                margin_value_at_issue=Decimal("249600.00"),
                repayment_due=Decimal("53040.00"),
                top_up_due=Decimal("62400.00"),
                deadline=item.facility.created_at,
            ),
        )
    calls = {c.pk: c for c in MarginCall.objects.all()}
    assert sorted(calls) == sorted(item.pk for item in items)
    first = calls[items[0].pk]
    assert (first.debt_at_issue, first.status, first.close_reason) == (
        Money("265200.00", "HKD"), MarginCallStatus.ISSUED, "")  # fmt: skip
    assert (first.repayment_due, first.top_up_due, first.ratio_at_issue) == (
        Money("53040.00", "HKD"), Money("62400.00", "HKD"), Decimal("1.05000000"))  # fmt: skip
    assert first.issued_at is not None
    assert first.closed_at is None


class EventRow(NamedTuple):
    type: str
    summary: str
    payload: dict
    subject_type: str


class SummaryFirst(NamedTuple):
    summary: str
    type: str
    payload: dict
    subject_type: str


def test_rows_carry_their_columns_as_named_tuples_or_mappings():
    """Each value lands in the column its row names, whatever the order of the row's fields."""
    with transaction.atomic():
        written = bulk_insert_values(
            Event,
            [
                EventRow(type="test.a", summary="a", payload={"n": 1}, subject_type="x"),
                EventRow(type="test.b", summary="b", payload={}, subject_type=""),
            ],
        )
        written += bulk_insert_values(Event, [SummaryFirst("c", "test.c", {"n": "3"}, "y")])
        written += bulk_insert_values(
            Event, [{"payload": {}, "subject_type": "z", "summary": "d", "type": "test.d"}]
        )
    assert written == 4
    stored = Event.objects.order_by("type").values_list("type", "summary", "payload", "subject_type")
    assert list(stored) == [
        ("test.a", "a", {"n": 1}, "x"),
        ("test.b", "b", {}, ""),
        ("test.c", "c", {"n": "3"}, "y"),
        ("test.d", "d", {}, "z"),
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("test.a", "a", {}, "")], "a row names its columns"),
        ([EventRow("test.a", "a", {}, ""), SummaryFirst("b", "test.b", {}, "")], "all EventRows"),
        (
            [
                {"type": "test.a", "summary": "a", "payload": {}},
                {"type": "test.b", "summary": "b", "payload": {}, "subject_type": ""},
            ],
            "all name the columns",
        ),
    ],
)
def test_rows_that_do_not_name_their_columns_alike_are_refused(rows, message):
    with transaction.atomic(), pytest.raises(TypeError, match=message):
        bulk_insert_rows(Event, rows)
    assert not Event.objects.exists()
