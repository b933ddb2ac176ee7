"""The one-statement read of a facility (``facility_read``, what an API read serves) gives the figures that
``facility_valuation`` works out from its seven queries, over a book of every kind of holding, route of FX and
policy; and it keeps a client to their own facility."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import SYSTEM
from collateral.services import collateral_deposit, pool_open
from financing.margin_calls.services import margin_call_issue
from financing.models import Facility, MarginPolicy
from financing.selectors import facility_read, facility_valuation, open_margin_call
from tests.collateral.factories import asset, fx, price
from tests.financing.factories import varied_book

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(market) -> list[Facility]:
    return varied_book()


def test_the_one_statement_read_values_every_facility_as_the_python_valuation_does(book):
    # A rate held for confirmation is not used, and a newer usable one wins over an older one.
    fx("USD", "7.81")
    fx("USD", "9.50", band_check=True)  # outside the peg: held
    price("BTC", "10000")  # BTC falls: the first facility is in a margin call
    margin_call_issue(facility=book[0], actor=SYSTEM)
    for facility in book:
        read = facility_read(facility.pk)
        assert read.valuation == facility_valuation(facility), facility.reference
        call = open_margin_call(facility)
        assert read.open_margin_call_id == (call.pk if call else None)
        assert (read.reference, read.client_id, read.status, read.limit) == (
            facility.reference,
            facility.client_id,
            facility.status,
            facility.limit.amount,
        )
        assert read.policy_name == (facility.policy.name if facility.policy_id else None)
    assert facility_read(book[0].pk).open_margin_call_id is not None
    # The varied book is varied: interest, a binding limit, an unpriced holding, a conversion through USD.
    valuations = [facility_read(f.pk).valuation for f in book]
    assert valuations[0].debt.interest > 0
    assert valuations[0].debt.fees == Decimal("123.45")
    assert any(p.excess_over_limit > 0 for p in valuations[1].valuation.positions)
    assert not all(p.priced for p in valuations[4].valuation.positions)
    assert valuations[3].market_value > 0
    assert valuations[3].thresholds.max_advance == Decimal("0.6")
    assert valuations[-1].valuation.positions == ()
    assert valuations[-1].debt.total == 0


def test_the_default_policy_is_read_live_and_made_again_when_missing(book):
    MarginPolicy.objects.filter(is_default=True).update(max_advance=Decimal("0.7"))
    assert facility_read(book[0].pk).valuation.thresholds.max_advance == Decimal("0.7")
    MarginPolicy.objects.filter(is_default=True).delete()
    assert facility_read(book[0].pk).valuation == facility_valuation(book[0])


def test_one_statement_and_only_the_clients_own_facility(book):
    facility = book[3]
    with CaptureQueriesContext(connection) as queries:
        read = facility_read(facility.pk, client_id=facility.client_id)
    assert len(queries.captured_queries) == 1
    assert read.id == facility.pk
    assert facility_read(facility.pk, client_id=book[2].client_id) is None
    assert facility_read(10**12) is None


def test_a_pool_holding_moves_the_read_at_once(book):
    facility = book[2]
    before = facility_read(facility.pk).valuation.market_value
    pool = pool_open(client=facility.client, actor=SYSTEM)
    collateral_deposit(pool=pool, asset=asset("HKD"), quantity="1000.00", actor=SYSTEM)
    assert facility_read(facility.pk).valuation.market_value == before + Decimal("1000.00")
