"""Form fields for amounts written by people (the admin): plain ASCII decimals only, as in the API and the
price files. Django's own ``DecimalField`` reads ``1e5``, `` 100 `` and other scripts' digits without a word."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from djmoney.forms.fields import MoneyField

from core.parsing import PLAIN_DECIMAL_WORDS, is_plain_decimal


class PlainDecimalField(forms.DecimalField):
    def to_python(self, value):
        if isinstance(value, str) and value not in self.empty_values and not is_plain_decimal(value):
            raise ValidationError(
                f"{value[:40]!r} is not an amount: write {PLAIN_DECIMAL_WORDS}.", code="invalid"
            )
        return super().to_python(value)


class PlainMoneyField(MoneyField):
    """django-money's amount-and-currency field with a ``PlainDecimalField`` for the amount."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        amount = self.fields[0]
        plain = PlainDecimalField(
            max_value=amount.max_value,
            min_value=amount.min_value,
            max_digits=amount.max_digits,
            decimal_places=amount.decimal_places,
            required=amount.required,
        )
        plain.widget = amount.widget
        self.fields = (plain, *self.fields[1:])
