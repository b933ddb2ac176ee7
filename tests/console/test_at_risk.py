"""The at-risk list: who is on it, in which order, the filters and the search, live for every role."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse

from console.selectors import AtRiskFilters, at_risk_page

pytestmark = pytest.mark.django_db


def references(**filters):
    return [row.reference for row in at_risk_page(AtRiskFilters(**filters)).rows]


def test_warning_or_worse_and_those_near_it_closest_to_a_call_by_btc_first(book):
    assert references() == [
        book.called.reference,  # at a call already
        book.warned.reference,  # BTC −7.85%
        book.near.reference,  # BTC −15.87%
        book.ether.reference,  # no BTC: last
    ]


def test_the_btc_move_to_a_call(book):
    rows = {row.reference: row for row in at_risk_page(AtRiskFilters()).rows}
    unit = Decimal("249600")
    assert rows[book.warned.reference].btc_move.quantize(Decimal("0.000001")) == (
        (Decimal("230000") - unit) / unit
    ).quantize(Decimal("0.000001"))
    assert rows[book.near.reference].btc_move.quantize(Decimal("0.000001")) == Decimal("-0.158654")
    assert rows[book.called.reference].at_call_already
    assert not rows[book.warned.reference].at_call_already
    assert rows[book.ether.reference].btc_move is None
    assert rows[book.called.reference].deadline is not None
    assert rows[book.warned.reference].deadline is None
    assert rows[book.called.reference].debt == Decimal("265000.00")


def test_by_ratio(book):
    assert references(order="ratio") == [
        book.called.reference,
        book.warned.reference,
        book.ether.reference,
        book.near.reference,
    ]


def test_filters_and_search(book):
    assert references(status="warning") == [book.warned.reference, book.ether.reference]
    assert references(status="ok") == [book.near.reference, book.safe.reference]
    assert references(asset="ETH") == [book.ether.reference]
    assert references(client=book.near.client.reference) == [book.near.reference]
    assert references(search="called") == [book.called.reference]
    assert references(search=book.warned.reference) == [book.warned.reference]
    assert references(search="nobody by this name") == []


def test_filters_from_a_query_refuse_nonsense():
    filters = AtRiskFilters.from_query({"status": "drop table", "order": "evil", "page": "x", "asset": "btc"})
    assert filters == AtRiskFilters(status="", order="btc_move", page=1, asset="BTC")


def test_the_page_and_its_rows_fragment(book, as_role):
    client = as_role("compliance")
    page = client.get(reverse("console:at_risk"), {"asset": "BTC"}).content.decode()
    assert book.called.reference in page
    assert book.ether.reference not in page
    assert 'hx-trigger="every 5s"' in page
    assert 'hx-get="/console/at-risk/rows/?asset=BTC"' in page
    rows = client.get(reverse("console:at_risk_rows"), {"q": "Near"}).content.decode()
    assert book.near.reference in rows
    assert book.called.reference not in rows
    assert "<html" not in rows  # a fragment, not a page
    assert "−15.9%" in rows
    assert "at a call now" not in rows


def test_pages_of_fifty(book, monkeypatch):
    everyone = references()
    monkeypatch.setattr("console.selectors.overview.AT_RISK_PAGE_SIZE", 2)
    cache.clear()  # the pages are kept per sweep
    first = at_risk_page(AtRiskFilters())
    second = at_risk_page(AtRiskFilters(page=2))
    assert (first.total, first.pages, second.page) == (4, 2, 2)
    assert [r.reference for r in first.rows + second.rows] == everyone
    assert first.next_query == "page=2"
    assert second.previous_query == ""
    assert at_risk_page(AtRiskFilters(page=99)).page == 2


def test_a_page_is_worked_out_once_per_sweep(book, django_assert_max_num_queries):
    at_risk_page(AtRiskFilters(status="warning"))
    with django_assert_max_num_queries(1):  # the latest sweep, then the kept page
        again = at_risk_page(AtRiskFilters(status="warning"))
    assert [row.reference for row in again.rows] == [book.warned.reference, book.ether.reference]
