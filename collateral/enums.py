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


class PriceStatus(models.TextChoices):
    """Whether a recorded price or FX rate may be used. A pushed one too far from the one in use (or, for a
    pegged pair, outside the peg band) is held until a second person confirms it."""

    ACCEPTED = "accepted", "Accepted"
    UNCONFIRMED = "unconfirmed", "Held: awaiting confirmation by a second person"
    CONFIRMED = "confirmed", "Confirmed by a second person"
    REJECTED = "rejected", "Rejected"


# The statuses of a price or rate the platform may value and sell on.
USABLE_PRICE_STATUSES = (PriceStatus.ACCEPTED, PriceStatus.CONFIRMED)
