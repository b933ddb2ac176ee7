"""Admin helpers shared by every app: writes go through services, and a refusal from a service is shown
to the member of staff as a message instead of an error page."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.db import models, transaction
from django.http import HttpResponseRedirect
from djmoney.models.fields import MoneyField

from core.exceptions import DomainError
from core.forms import PlainDecimalField, PlainMoneyField

# Every decimal and money column edited in the admin takes plain ASCII decimals only.
PLAIN_AMOUNTS = {
    models.DecimalField: {"form_class": PlainDecimalField},
    MoneyField: {"form_class": PlainMoneyField},
}


class ServiceAdminMixin:
    """Shows a service's refusal (``DomainError``) as an error message on the same page. The whole
    request ran in one transaction, so nothing of the refused change was written. Amounts are plain ASCII
    decimals (``PLAIN_AMOUNTS``)."""

    formfield_overrides = PLAIN_AMOUNTS

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            with transaction.atomic():
                return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            self.message_user(request, str(error), level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ReadOnlyAdminMixin:
    """Records nobody edits through the admin: the ledger, audit events, price history."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AddOnlyAdminMixin:
    """Records that are entered and then never changed or deleted here (prices, FX and base rates, fills):
    a correction is a new record."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def run_for_each(
    model_admin: admin.ModelAdmin,
    request,
    objects: Iterable,
    action: Callable[[object], object],
    done: str,
) -> None:
    """Run a service for each selected object in its own transaction; report successes and every
    refusal with its reason."""
    succeeded = 0
    for obj in objects:
        try:
            with transaction.atomic():
                action(obj)
            succeeded += 1
        except DomainError as error:
            model_admin.message_user(request, f"{obj}: {error}", level=messages.ERROR)
    if succeeded:
        model_admin.message_user(request, f"{succeeded} {done}.", level=messages.SUCCESS)
