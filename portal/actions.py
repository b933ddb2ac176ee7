"""The client's own actions: each previewed by running the very service it will call inside a transaction
that is then rolled back (so the preview is the service's own answer — the ratio after, or its refusal in
words), then confirmed by calling it for real with an idempotency key carried by the form (a second submit
returns what the first did)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from collateral.models import Asset
from collateral.selectors import custody_holdings, pool_holdings
from core.exceptions import DomainError
from financing.enums import InstructionStatus
from financing.lending.free_holdings import (
    free_holdings_pledge,
    pool_release_to_free_holdings,
    repayment_from_free_cash,
)
from financing.lending.services import drawdown_create
from financing.models import Facility, StandingTopUpInstruction
from financing.selectors import FacilityValuation, facility_pool, facility_valuation
from financing.top_ups.instructions import standing_top_up_request, standing_top_up_revoke
from portal.selectors import STATUS_TONE, STATUS_WORDS


class _RolledBack(Exception):
    def __init__(self, after: FacilityValuation):
        self.after = after


@dataclass(frozen=True)
class Preview:
    refusal: str  # the service's refusal in words; empty when it would go through
    before: FacilityValuation
    after: FacilityValuation | None

    @property
    def status_words(self) -> str:
        return str(STATUS_WORDS[self.after.status]) if self.after else ""

    @property
    def status_tone(self) -> str:
        return STATUS_TONE[self.after.status] if self.after else ""


def preview(facility: Facility, perform: Callable[[], Any]) -> Preview:
    """What ``perform`` would do, without doing it: run it in a savepoint, value the facility, roll back.
    Callbacks queued on commit inside the savepoint are dropped with it."""
    before = facility_valuation(facility)
    try:
        with transaction.atomic():
            perform()
            raise _RolledBack(facility_valuation(facility))
    except _RolledBack as rolled_back:
        return Preview(refusal="", before=before, after=rolled_back.after)
    except DomainError as refusal:
        return Preview(refusal=str(refusal), before=before, after=None)


def service_key(user, token: str) -> str:
    """The service's idempotency key for a form's token: a different user's token never matches."""
    return hashlib.sha256(f"portal:{user.pk}:{token}".encode()).hexdigest()[:64]


class ActionForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)


class AmountForm(ActionForm):
    amount = forms.DecimalField(
        label=_("Amount (HK$)"), min_value=Decimal("0.01"), max_digits=16, decimal_places=2
    )


class AssetQuantityForm(ActionForm):
    asset = forms.ChoiceField(label=_("Asset"))
    quantity = forms.DecimalField(
        label=_("Quantity"), min_value=Decimal("0"), max_digits=38, decimal_places=18
    )

    def __init__(self, *args, symbols: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["asset"].choices = [(symbol, symbol) for symbol in symbols]

    def clean_quantity(self):
        quantity = self.cleaned_data["quantity"]
        if quantity <= 0:
            raise forms.ValidationError(_("Enter a quantity above zero."))
        return quantity


class InstructionForm(ActionForm):
    switch = forms.ChoiceField(choices=[("on", "on"), ("off", "off")], widget=forms.HiddenInput)
    asset_order = forms.MultipleChoiceField(
        label=_("Assets to move after cash, in this order"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def __init__(self, *args, symbols: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["asset_order"].choices = [(symbol, symbol) for symbol in symbols]


@dataclass(frozen=True)
class Action:
    slug: str
    title: str
    explanation: str
    moves_money: bool


ACTIONS = {
    "draw-down": Action(
        "draw-down", _("Draw down"), _("Borrow more against your pool, up to the max advance."), True
    ),
    "repay": Action(
        "repay",
        _("Repay from free cash"),
        _(
            "Repay from the Hong Kong dollars you hold free at the broker: fees first, then interest, then principal."
        ),
        True,
    ),
    "pledge": Action(
        "pledge",
        _("Move free holdings into the pool"),
        _("Pledge assets you hold free at the broker: they count towards your margin value at once."),
        True,
    ),
    "release": Action(
        "release",
        _("Release collateral"),
        _(
            "Move assets from the pool back to your free holdings, as long as the ratio stays within the max advance."
        ),
        True,
    ),
    "instruction": Action(
        "instruction",
        _("Standing top-up instruction"),
        _("Ask for free holdings to be moved into the pool by themselves at a margin call, or stop it."),
        False,
    ),
}


def form_for(slug: str, facility: Facility, data=None, initial=None) -> forms.Form:
    if slug in ("draw-down", "repay"):
        return AmountForm(data, initial=initial)
    if slug == "pledge":
        symbols = sorted(custody_holdings(facility.client))
        return AssetQuantityForm(data, initial=initial, symbols=symbols)
    if slug == "release":
        pool = facility_pool(facility)
        symbols = sorted(pool_holdings(pool)) if pool else []
        return AssetQuantityForm(data, initial=initial, symbols=symbols)
    symbols = sorted(Asset.objects.filter(eligible=True).exclude(kind="cash").values_list("pk", flat=True))
    return InstructionForm(data, initial=initial, symbols=symbols)


def pending_or_active_instruction(facility: Facility) -> StandingTopUpInstruction | None:
    return (
        StandingTopUpInstruction.objects.filter(
            client_id=facility.client_id,
            status__in=[InstructionStatus.PENDING_SIGN_OFF, InstructionStatus.ACTIVE],
        )
        .order_by("-requested_at")
        .first()
    )


def perform(slug: str, facility: Facility, data: dict, user, key: str) -> Callable[[], Any]:
    """The service call behind an action, ready to run (for the preview, or for real)."""
    client = facility.client
    if slug == "draw-down":
        return lambda: drawdown_create(
            facility=facility, amount=data["amount"], actor=user, idempotency_key=key
        )
    if slug == "repay":
        return lambda: repayment_from_free_cash(
            facility=facility, amount=data["amount"], actor=user, idempotency_key=key
        )
    if slug in ("pledge", "release"):
        service = free_holdings_pledge if slug == "pledge" else pool_release_to_free_holdings
        asset = Asset.objects.get(pk=data["asset"])
        return lambda: service(
            client=client, asset=asset, quantity=data["quantity"], actor=user, idempotency_key=key
        )
    current = pending_or_active_instruction(facility)
    if data["switch"] == "off":
        if current is None:
            return lambda: None  # off already: a second submit does nothing
        return lambda: standing_top_up_revoke(instruction=current, actor=user, reason="revoked in the portal")
    if current is not None:
        return lambda: current  # asked for already: a second submit does nothing
    return lambda: standing_top_up_request(
        client=client, trigger="margin_call", asset_order=list(data.get("asset_order") or []), actor=user
    )
