"""The SQL functions the ladder words its records with (migration ``0015_wording_functions``) give what
their Python twins give, for any value."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from core.money import format_hkd, format_percent

pytestmark = pytest.mark.django_db

ratios = st.decimals(min_value=0, max_value=Decimal("999999999999.99999999"), places=8)
amounts = st.decimals(
    min_value=Decimal("-999999999999999999.99"), max_value=Decimal("999999999999999999.99"), places=2
)
moments = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1),
    max_value=datetime.datetime(2100, 1, 1),
    timezones=st.just(datetime.UTC),
)


def sql(function: str, value):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [value])
        return cursor.fetchone()[0]


@settings(max_examples=200, deadline=None)
@given(ratio=st.none() | ratios)
def test_format_percent_in_sql_is_the_python_one(ratio):
    assert sql("format_percent", ratio) == format_percent(ratio)


@settings(max_examples=200, deadline=None)
@given(amount=amounts)
def test_format_hkd_in_sql_is_the_python_one(amount):
    assert sql("format_hkd", amount) == format_hkd(amount)


@settings(max_examples=200, deadline=None)
@given(moment=moments)
def test_isoformat_utc_in_sql_is_python_isoformat(moment):
    assert sql("isoformat_utc", moment) == moment.isoformat()


@pytest.mark.parametrize(
    ("ratio", "words"),
    [(Decimal("0E-8"), "0.00%"), (Decimal("0.00499999"), "0.50%"), (Decimal("0.00005"), "0.01%")],
)
def test_format_percent_rounds_half_up_in_both(ratio, words):
    assert sql("format_percent", ratio) == format_percent(ratio) == words
