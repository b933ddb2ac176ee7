"""Filters shared by the resources (django-filter)."""

from __future__ import annotations

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

MAX_ID = 2**63 - 1


class IdField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class IdFilter(django_filters.NumberFilter):
    """A record id: a whole number."""

    field_class = IdField


class BoundedIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        result = super().to_python(value)
        if result is not None and not 1900 <= result.year <= 9000:
            raise forms.ValidationError("The time must be between the years 1900 and 9000.", code="range")
        return result


class TimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time; without an offset it is read as Hong Kong time."""

    field_class = BoundedIsoDateTimeField
