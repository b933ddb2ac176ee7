"""Amounts are plain ASCII decimals everywhere people or systems write them: the services, every admin form
and the price file (the API: tests/api/test_errors.py)."""

from decimal import Decimal

import pytest
from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from djmoney.forms.fields import MoneyField

from core.exceptions import InvalidInput
from core.parsing import parse_amount
from tests.accounts.factories import StaffFactory
from tests.collateral.test_price_upload import HEADER, problems_listed, upload
from tests.helpers import login_as, project_apps, writes_nothing

NOT_AMOUNTS = [
    "1e5",
    "1E5",
    " 100",
    "100 ",
    "\t100",
    "100\n",
    "１００",  # full-width digits
    "١٠٠",  # Arabic-Indic digits
    "१००",  # Devanagari digits
    "1_000",
    "+100",
    "1,000",
    ".5",
    "5.",
    "NaN",
    "Infinity",
]


@pytest.mark.parametrize("text", NOT_AMOUNTS)
def test_the_services_refuse_what_is_not_a_plain_decimal(text):
    with pytest.raises(InvalidInput, match="is not an amount \\(plain digits with an optional decimal point"):
        parse_amount(text, field="price")


@pytest.mark.parametrize(
    ("text", "value"), [("100", Decimal(100)), ("0.5", Decimal("0.5")), ("007.50", Decimal("7.5"))]
)
def test_the_services_read_plain_decimals_exactly(text, value):
    assert parse_amount(text, field="price") == value


def _amount_fields(form_class) -> list[tuple[str, forms.Field]]:
    """Every field of the form that reads an amount: decimal fields, and the amount part of a money field."""
    return [
        (name, field)
        for name, field in form_class.base_fields.items()
        if isinstance(field, MoneyField | forms.DecimalField)
    ]


def _clean(field: forms.Field, text: str):
    return field.clean([text, "HKD"]) if isinstance(field, MoneyField) else field.clean(text)


@pytest.mark.django_db
def test_every_admin_form_refuses_amounts_that_are_not_plain_decimals():
    request = RequestFactory().get("/admin/")
    request.user = StaffFactory(role="Administrator", is_superuser=True)
    checked = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in project_apps():
            continue
        if not (model_admin.has_add_permission(request) or model_admin.has_change_permission(request)):
            continue  # read-only: its form is never sent
        for name, field in _amount_fields(model_admin.get_form(request)):
            label = f"{model._meta.label}.{name}"
            assert _clean(field, "1") is not None, label  # a plain decimal is read
            read = []
            for text in NOT_AMOUNTS:
                try:
                    _clean(field, text)
                except ValidationError:
                    continue
                read.append(text)
            assert not read, f"{label} read {read}"
            checked.append(label)
    # The forms staff type amounts into: prices and rates, haircuts and limits, movements and fills.
    for expected in (
        "collateral.Price.price",
        "collateral.FxRate.rate",
        "collateral.Asset.requested_haircut",
        "accounts.CreditProfile.requested_credit_limit",
        "financing.SaleFill.quantity",
        "financing.SaleFill.price",
    ):
        assert expected in checked, f"{expected} not among {checked}"


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["1e5", " 101", "101 ", "１０１", "١٠١"])
def test_a_price_file_with_an_amount_that_is_not_a_plain_decimal_is_refused(client, text):
    from tests.collateral.factories import asset

    asset("0005.HK")
    login_as(client, StaffFactory(role="Operations"))
    with writes_nothing():
        response = upload(client, HEADER + f"0005.HK,{text},,,\n")
    assert response.status_code == 200
    (problem,) = problems_listed(response)
    assert "line 2 (0005.HK): price:" in problem
    assert "is not an amount (plain digits with an optional decimal point" in problem
