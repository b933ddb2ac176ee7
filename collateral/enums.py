from django.db import models

from ledger.enums import InstrumentKind

AssetKind = InstrumentKind


class MovementKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
