"""Amounts, ratios and times as the pages show them: exact Decimal in, one text out, in both languages."""

import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.template import Context, Template
from django.utils import translation
from djmoney.money import Money
from hypothesis import given
from hypothesis import strategies as st

from web.formatting import hk_time, hkd, percent, price_exact, price_in, quantity, ratio_or_infinite, shock

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("1234567.89"), "HK$1,234,567.89"),
        (Decimal("0"), "HK$0.00"),
        (Decimal("0.5"), "HK$0.50"),
        (Decimal("999.995"), "HK$1,000.00"),  # half up at the cent
        (Decimal("999.994999"), "HK$999.99"),
        (Decimal("-1234567.89"), "\u2212HK$1,234,567.89"),
        (Decimal("-0.004"), "HK$0.00"),  # rounds to zero: no minus sign on nothing
        (Decimal("-0.005"), "\u2212HK$0.01"),
        (Decimal("12345678901234567.89"), "HK$12,345,678,901,234,567.89"),  # beyond a float's 15-16 digits
        (1500, "HK$1,500.00"),
        (Money("2500.1", "HKD"), "HK$2,500.10"),
        (None, "—"),
    ],
)
def test_hkd(amount, shown):
    assert hkd(amount) == shown


@pytest.mark.parametrize("bad", [1.5, "1.50", True, object()])
def test_hkd_refuses_what_is_not_an_exact_amount(bad):
    with pytest.raises(TypeError, match="Decimal or an int"):
        hkd(bad)


def test_hkd_refuses_another_currency_and_non_numbers():
    with pytest.raises(ValueError, match="not USD"):
        hkd(Money("1", "USD"))
    with pytest.raises(ValueError, match="finite"):
        hkd(Decimal("NaN"))
    with pytest.raises(ValueError, match="finite"):
        hkd(Decimal("-Infinity"))


@given(cents=st.integers(min_value=-(10**18), max_value=10**18))
def test_hkd_reads_back_to_the_same_cents(cents):
    amount = Decimal(cents).scaleb(-2)
    shown = hkd(amount)
    digits = shown.replace("\u2212", "-").replace("HK$", "").replace(",", "")
    assert Decimal(digits) == amount


@pytest.mark.parametrize(
    ("ratio", "shown"),
    [
        (Decimal("0.745"), "74.50%"),
        (Decimal("1.5"), "150.00%"),
        (Decimal("0.123456"), "12.35%"),  # half up at the second place
        (Decimal("0.00004"), "0.00%"),
        (Decimal("-0.02"), "\u22122.00%"),
        (Decimal("12.3456"), "1,234.56%"),
        (1, "100.00%"),
        (None, "—"),
    ],
)
def test_percent(ratio, shown):
    assert percent(ratio) == shown


def test_percent_to_other_places_and_refuses_floats():
    assert percent(Decimal("0.74567"), places=1) == "74.6%"
    assert percent(Decimal("0.745"), places=0) == "75%"
    with pytest.raises(TypeError):
        percent(0.745)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("0.222464570000000000"), "0.22246457"),
        (Decimal("70000.0000000000"), "70,000"),  # never 7E+4
        (Decimal("1234.50"), "1,234.5"),
        (Decimal("0.00000001"), "0.00000001"),
        (3, "3"),
        (Decimal("-2.50"), "\u22122.5"),  # the minus sign, as for amounts
        (Decimal("-0.000"), "0"),  # no minus on nothing
        (Decimal("123456789012.123456789012345678"), "123,456,789,012.123456789012345678"),  # all 30 digits
        (None, "—"),
    ],
)
def test_quantity_drops_trailing_zeros_and_nothing_else(amount, shown):
    assert quantity(amount) == shown


def test_price_exact_keeps_what_was_recorded_beyond_the_cent():
    assert price_exact(Decimal("70000.0000000000"), "USD") == "US$70,000.00"
    assert price_exact(Decimal("61234.5678000000"), "USD") == "US$61,234.5678"  # not rounded to .57
    assert price_exact(Decimal("0.2450000000"), "HKD") == "HK$0.245"  # a security under HK$0.25: 0.001 ticks
    assert price_exact(Decimal("-1.5"), "JPY") == "\u2212JPY 1.50"
    assert price_exact(None, "USD") == "—"
    with pytest.raises(TypeError):
        price_exact(0.245, "HKD")


def test_a_ratio_kept_as_none_is_infinite():
    assert ratio_or_infinite(None) == "∞"
    assert ratio_or_infinite(Decimal("0.85")) == "85.00%"


def test_price_in_its_own_currency_to_the_cent():
    assert price_in(Decimal("70000.0000000000"), "USD") == "US$70,000.00"
    assert price_in(Decimal("61234.505"), "USD") == "US$61,234.51"  # half up
    assert price_in(Decimal("400"), "HKD") == "HK$400.00"
    assert price_in(Decimal("-1.5"), "JPY") == "\u2212JPY 1.50"
    assert price_in(None, "USD") == "—"
    with pytest.raises(TypeError):
        price_in(61234.5, "USD")
    with pytest.raises(TypeError):
        quantity("0.5")


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ("-0.396", "\u221239.6%"),
        ("-0.40", "\u221240%"),
        ("+0.005", "+0.5%"),
        (Decimal("-0.1234"), "\u221212.34%"),  # exact: a scenario is shown as it was defined
        ("0", "0%"),
        (None, "—"),
    ],
)
def test_a_shock_reads_as_an_exact_signed_percentage(change, shown):
    assert shock(change) == shown


def test_a_shock_refuses_floats_and_what_is_not_a_number():
    with pytest.raises(TypeError):
        shock(-0.4)
    with pytest.raises(ArithmeticError):
        shock("a lot")


def test_hk_time_is_hong_kong_time_whatever_zone_it_comes_in():
    assert hk_time(datetime.datetime(2026, 12, 6, 4, 0, tzinfo=UTC)) == "2026-12-06 12:00 HKT"
    new_york = datetime.datetime(2026, 12, 5, 23, 30, 59, tzinfo=ZoneInfo("America/New_York"))
    assert hk_time(new_york) == "2026-12-06 12:30 HKT"  # across the date line, seconds dropped
    assert hk_time(None) == "—"


def test_hk_time_refuses_naive_datetimes_and_dates():
    with pytest.raises(ValueError, match="aware"):
        hk_time(datetime.datetime(2026, 12, 6, 12, 0))
    with pytest.raises(TypeError, match="datetime"):
        hk_time(datetime.date(2026, 12, 6))


def test_hk_time_names_the_zone_in_the_reader_s_language():
    moment = datetime.datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
    with translation.override("zh-hant"):
        assert hk_time(moment) == "2026-12-06 12:00 香港時間"
    with translation.override("en-gb"):
        assert hk_time(moment) == "2026-12-06 12:00 HKT"


def test_the_template_filters_are_the_same_functions():
    template = Template(
        "{% load formatting %}{{ a|hkd }} | {{ r|percent }} | {{ r|percent:1 }} | {{ t|hk_time }}"
        " | {{ q|quantity }} | {{ p|price_in:'USD' }}"
    )
    context = Context(
        {
            "a": Decimal("-1234.5"),
            "r": Decimal("0.7456"),
            "t": datetime.datetime(2026, 1, 1, tzinfo=UTC),
            "q": Decimal("2.50"),
            "p": Decimal("61234.5"),
        }
    )
    assert template.render(context) == (
        "\u2212HK$1,234.50 | 74.56% | 74.6% | 2026-01-01 08:00 HKT | 2.5 | US$61,234.50"
    )


def test_a_template_that_passes_a_float_fails_loudly():
    template = Template("{% load formatting %}{{ a|hkd }}")
    with pytest.raises(TypeError):
        template.render(Context({"a": 1.5}))
