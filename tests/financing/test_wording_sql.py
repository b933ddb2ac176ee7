"""The SQL functions the ladder words its records with (``wording_functions.sql``, migration 0002) give what
their Python twins give, for any value."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from collateral.calculations import cure_amounts
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


debts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999999999.99"), places=2)
margin_values = st.decimals(min_value=0, max_value=Decimal("999999999999999.99"), places=2)
targets = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1"), places=4)


@settings(max_examples=300, deadline=None)
@given(debt=debts, margin_value=margin_values, target=targets)
def test_cure_amounts_in_sql_are_the_python_ones(debt, margin_value, target):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT cure_repayment(%s, %s, %s), cure_top_up(%s, %s, %s)", [debt, margin_value, target] * 2
        )
        repayment, top_up = cursor.fetchone()
    cure = cure_amounts(debt, margin_value, target)
    assert (repayment, top_up) == (cure.repayment, cure.cash_top_up)
    assert repayment.as_tuple().exponent == top_up.as_tuple().exponent == -2


def test_cure_amounts_round_up_to_the_cent_in_both():
    """D = 1,000,000.01, LV = 1,000,000, T = 0.85: repay 150,000.01, top up exactly 176,470.60; and
    D = 100.00, LV = 0, T = 0.3: top up 333.333… → 333.34."""
    for debt, margin_value, target, expected in [
        ("1000000.01", "1000000.00", "0.85", ("150000.01", "176470.60")),
        ("100.00", "0.00", "0.3000", ("100.00", "333.34")),
        ("85.00", "100.00", "0.85", ("0.00", "0.00")),
    ]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT cure_repayment(%s::numeric, %s::numeric, %s::numeric), cure_top_up(%s::numeric, %s::numeric, %s::numeric)",
                           [debt, margin_value, target] * 2)  # fmt: skip
            assert cursor.fetchone() == tuple(Decimal(e) for e in expected)
