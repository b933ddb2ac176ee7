"""Serializer fields for exact amounts (JSON strings, never numbers, which JSON libraries read as floats) and
unambiguous times (docs/api.md, "Amounts and times")."""

from __future__ import annotations

import datetime
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.parsing import DECIMAL_PATTERN, is_plain_decimal


def decimal_text(value: Decimal | None) -> str | None:
    """A stored decimal without its padding zeros: 1.50000000 → "1.5", 100 → "100"."""
    if value is None:
        return None
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@extend_schema_field(
    {"type": "string", "pattern": DECIMAL_PATTERN, "format": "decimal", "example": "1250000.00"}
)
class DecimalStringField(serializers.Field):
    """An exact decimal written as a JSON string, with at most ``decimal_places`` places and
    ``whole_digits`` digits before the point."""

    default_error_messages = {
        "number": (
            'Send amounts as a JSON string such as "1250000.00", not a JSON number: numbers are read '
            "as binary floats and are not exact."
        ),
        "invalid": '{value!r} is not a decimal amount (plain digits with an optional point, e.g. "1250.50").',
        "places": "At most {places} decimal places.",
        "whole_digits": "At most {digits} digits before the decimal point.",
        "positive": "Must be more than zero.",
        "negative": "Cannot be negative.",
    }

    def __init__(
        self,
        *,
        decimal_places: int,
        whole_digits: int,
        positive: bool = False,
        allow_negative: bool = False,
        **kwargs,
    ):
        self.decimal_places = decimal_places
        self.whole_digits = whole_digits
        self.positive = positive
        self.allow_negative = allow_negative
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> Decimal:
        if isinstance(data, bool | int | float):
            self.fail("number")
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        text = data
        if len(text) > 100 or not is_plain_decimal(text):
            self.fail("invalid", value=data[:40])
        try:
            value = Decimal(text)
        except InvalidOperation:  # the pattern makes this unreachable; kept as a guard
            self.fail("invalid", value=data[:40])
        whole, _, fraction = text.lstrip("-").partition(".")
        if len(fraction.rstrip("0")) > self.decimal_places:
            self.fail("places", places=self.decimal_places)
        if len(whole.lstrip("0")) > self.whole_digits:
            self.fail("whole_digits", digits=self.whole_digits)
        if self.positive and value <= 0:
            self.fail("positive")
        if not self.positive and not self.allow_negative and value < 0:
            self.fail("negative")
        return value

    def to_representation(self, value) -> str:
        return decimal_text(value)


# The API's bounds: what the database columns hold, and what exact arithmetic can quantise without
# leaving 28-digit precision (a quantity of an 18-place asset has at most 10 whole digits).
def money_field(**kwargs) -> DecimalStringField:
    """HKD to the cent, up to 999,999,999,999,999,999.99."""
    return DecimalStringField(decimal_places=2, whole_digits=18, **kwargs)


def quantity_field(**kwargs) -> DecimalStringField:
    """An asset quantity: up to 18 places (the asset's own decimals are checked by the service)."""
    return DecimalStringField(decimal_places=18, whole_digits=10, **kwargs)


def price_field(**kwargs) -> DecimalStringField:
    return DecimalStringField(decimal_places=10, whole_digits=18, **kwargs)


def fraction_field(**kwargs) -> DecimalStringField:
    """A share written as a fraction, 0.6 = 60%, four places at most (the service checks the range)."""
    return DecimalStringField(decimal_places=4, whole_digits=1, **kwargs)


@extend_schema_field(
    {"type": "string", "pattern": DECIMAL_PATTERN, "format": "decimal", "example": "1250000.00"}
)
class MoneyOutField(serializers.DecimalField):
    """An HKD amount (django-money ``Money`` or ``Decimal``) out as a string with two places."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(max_digits=20, decimal_places=2, coerce_to_string=True, **kwargs)

    def to_representation(self, value):
        amount = getattr(value, "amount", value)
        return super().to_representation(amount)


@extend_schema_field({"type": "string", "pattern": DECIMAL_PATTERN, "format": "decimal", "example": "0.85"})
class RatioOutField(serializers.Field):
    """A margin ratio or LTV as a decimal fraction with eight places (0.85000000 = 85%); null means
    infinite (debt and nothing to set against it)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return None if value is None else f"{value:.8f}"


@extend_schema_field({"type": "string", "pattern": DECIMAL_PATTERN, "format": "decimal", "example": "0.5"})
class PlainDecimalOutField(serializers.Field):
    """A quantity, price or rate out as a string without padding zeros."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return decimal_text(value)


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that must say its offset (``2026-03-02T16:10:00+08:00`` or ``…Z``): a time
    without one is ambiguous between Hong Kong and UTC."""

    default_error_messages = {
        "naive": "Give the time with its offset, e.g. 2026-03-02T16:10:00+08:00 or 2026-03-02T08:10:00Z.",
        "range": "The time must be between the years 2000 and 2999.",
    }

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        result = super().to_internal_value(value)
        if not 2000 <= result.year <= 2999:
            self.fail("range")
        return result


class BoundedDateField(serializers.DateField):
    default_error_messages = {"range": "The date must be between 1900-01-01 and 2999-12-31."}

    def to_internal_value(self, value):
        result = super().to_internal_value(value)
        if not datetime.date(1900, 1, 1) <= result <= datetime.date(2999, 12, 31):
            self.fail("range")
        return result
