from django.db import models

from ledger.enums import InstrumentKind

AssetKind = InstrumentKind


class MovementKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"


class CustodyMovementKind(models.TextChoices):
    """A change in a client's free (unpledged) holdings at the broker, as the custody system reports it."""

    RECEIVED = "received", "Received into free custody"
    RELEASED = "released", "Released from free custody"
