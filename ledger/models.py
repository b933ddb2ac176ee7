"""One double-entry ledger for every instrument: append-only transactions whose legs sum to zero per
instrument, and balances derived from them (docs/design.md, "The ledger and the audit trail")."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from ledger.enums import AccountKind, InstrumentKind, TransactionKind


def quantity_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=settings.QUANTITY_MAX_DIGITS, decimal_places=settings.QUANTITY_DECIMAL_PLACES, **kwargs
    )


class Instrument(models.Model):
    """Anything the ledger counts: a currency, a crypto asset or a security, by its code."""

    code = models.CharField(max_length=20, primary_key=True)
    kind = models.CharField(max_length=10, choices=InstrumentKind.choices)
    decimals = models.PositiveSmallIntegerField(help_text="places a quantity may have: HKD 2, BTC 8, ETH 18")

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(decimals__lte=18), name="instrument_decimals_at_most_18")
        ]

    def __str__(self) -> str:
        return self.code


class Account(models.Model):
    code = models.CharField(max_length=60, unique=True)
    kind = models.CharField(max_length=30, choices=AccountKind.choices, db_index=True)
    client = models.ForeignKey(
        "accounts.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Transaction(models.Model):
    kind = models.CharField(max_length=20, choices=TransactionKind.choices, db_index=True)
    memo = models.CharField(max_length=300)
    posted_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_label = models.CharField(max_length=150)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-posted_at", "-pk"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}: {self.memo}"


class Leg(models.Model):
    # Indexed together with the instrument (below): the zero-sum check groups one transaction's legs by
    # instrument, and with only single-column indexes the planner walked the whole instrument index for
    # every leg of a bulk load (quadratic: 260 s to commit 40,000 legs).
    transaction = models.ForeignKey(
        Transaction, on_delete=models.PROTECT, related_name="legs", db_index=False
    )
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="legs")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+", db_index=False)
    amount = quantity_field()

    class Meta:
        ordering = ["transaction_id", "pk"]
        indexes = [
            models.Index(fields=["account", "instrument"]),
            models.Index(fields=["transaction", "instrument"], name="leg_transaction_instrument_idx"),
        ]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="leg_amount_not_zero")]

    def __str__(self) -> str:
        return f"{self.account.code} {self.amount:+} {self.instrument_id}"


class Balance(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="balances")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    amount = quantity_field(default=0)

    class Meta:
        ordering = ["account_id", "instrument_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "instrument"], name="one_balance_per_account_instrument"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account.code}: {self.amount} {self.instrument_id}"
