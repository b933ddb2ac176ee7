"""Filters shared by the resources (django-filter)."""

from __future__ import annotations

import datetime

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


class TrueFalseField(forms.NullBooleanField):
    widget = forms.TextInput  # the raw text, so that anything but true or false is refused

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in ("true", "false"):
            return value == "true"
        raise forms.ValidationError("Either true or false.", code="invalid")

    def validate(self, value):
        pass


class BooleanFilter(django_filters.BooleanFilter):
    """``true`` or ``false``, nothing else."""

    field_class = TrueFalseField


class BoundedIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        if not 1900 <= result.year <= 9000:
            raise forms.ValidationError("The time must be between the years 1900 and 9000.", code="range")
        # In UTC: PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows (and nobody uses).
        return result.astimezone(datetime.UTC)


class TimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time; without an offset it is read as Hong Kong time."""

    field_class = BoundedIsoDateTimeField


class FilterSet(django_filters.FilterSet):
    """A filter given with an empty value (``?status=``) is refused rather than ignored, except for free
    text, so that a typo never silently widens what is returned."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, filter_ in self.filters.items():
            if self.data.get(name) == "" and not isinstance(filter_, django_filters.CharFilter):
                self.form.add_error(name, "Give a value, or leave the parameter out.")
                valid = False
        return valid
