"""The bulk-write helpers: the rows they write are the rows ``save()`` would."""

from decimal import Decimal

import pytest
from django.db import transaction
from djmoney.money import Money

from core.db import bulk_insert, id_in
from financing.enums import MarginCallStatus
from financing.models import MarginCall
from tests.accounts.factories import ClientFactory
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("count", [3, 150])  # placeholders, and one array parameter above a hundred ids
def test_id_in_selects_exactly_the_given_rows(count):
    clients = [ClientFactory() for _ in range(count + 5)]
    wanted = [c.pk for c in clients[:count]]
    found = type(clients[0]).objects.filter(id_in("pk", wanted)).values_list("pk", flat=True)
    assert sorted(found) == sorted(wanted)


def test_bulk_insert_with_keys_writes_what_save_writes(market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    deadline = facility.created_at
    fields = dict(ratio_at_issue=Decimal("1.05000000"), debt_at_issue=Money("265200.00", "HKD"),
                  margin_value_at_issue=Money("249600.00", "HKD"), repayment_due=Money("53040.00", "HKD"),
                  top_up_due=Money("62400.00", "HKD"), deadline=deadline)  # fmt: skip
    calls = [MarginCall(facility=facility, **fields)]
    with transaction.atomic():
        bulk_insert(MarginCall, calls, with_pks=True)
    call = MarginCall.objects.get()
    assert call.pk == calls[0].pk
    assert call.status == MarginCallStatus.ISSUED
    assert call.issued_at is not None
    assert (call.repayment_due, call.top_up_due, call.ratio_at_issue) == (
        Money("53040.00", "HKD"), Money("62400.00", "HKD"), Decimal("1.05000000"))  # fmt: skip
