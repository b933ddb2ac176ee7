from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from collateral.enums import AssetKind, CustodyMovementKind, MovementKind, PriceStatus
from ledger.models import Account, Instrument, Transaction, quantity_field

CURRENCY_CHOICES = settings.CURRENCY_CHOICES


def fraction_field(verbose_name: str, **kwargs) -> models.DecimalField:
    """A share between 0 and 1 (haircuts, limits, thresholds), to four decimal places: 0.6 = 60%."""
    return models.DecimalField(
        verbose_name,
        max_digits=6,
        decimal_places=4,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        **kwargs,
    )


def price_field(verbose_name: str = "price", **kwargs) -> models.DecimalField:
    return models.DecimalField(
        verbose_name,
        max_digits=settings.PRICE_MAX_DIGITS,
        decimal_places=settings.PRICE_DECIMAL_PLACES,
        **kwargs,
    )


class Asset(models.Model):
    """Acceptable collateral: a security, BTC or ETH, or cash, with its haircut and limits."""

    instrument = models.OneToOneField(
        Instrument, on_delete=models.PROTECT, related_name="asset", primary_key=True
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=AssetKind.choices)
    currency = models.CharField("price currency", max_length=4, choices=CURRENCY_CHOICES)
    lot_size = quantity_field(default=Decimal(1), help_text="the smallest quantity that can be sold")
    haircut = fraction_field("haircut", help_text="0.60 means 60% of market value gives no lending value")
    concentration_limit = fraction_field(
        "concentration limit",
        null=True,
        blank=True,
        help_text="largest share of a pool's market value that counts for margin; the part above gets none",
    )
    eligible = models.BooleanField(default=True)
    sale_rank = models.PositiveSmallIntegerField(
        default=100, help_text="order in a forced sale when the policy does not say: lower sells first"
    )
    price_band = fraction_field(
        "price band",
        null=True,
        blank=True,
        help_text="how far (0.25 = 25%) a price typed or pushed by people or systems may move from the one in "
        "use before a second person must confirm it; empty: the PUSHED_PRICE_BAND setting",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sale_rank", "instrument_id"]
        permissions = [("approve_haircut", "Can approve haircut changes")]
        constraints = [
            models.CheckConstraint(
                condition=Q(haircut__gte=0, haircut__lte=1), name="asset_haircut_between_0_and_1"
            ),
            models.CheckConstraint(
                condition=Q(concentration_limit__isnull=True)
                | Q(concentration_limit__gt=0, concentration_limit__lte=1),
                name="asset_concentration_limit_between_0_and_1",
            ),
            models.CheckConstraint(condition=Q(lot_size__gt=0), name="asset_lot_size_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.name}"

    @property
    def symbol(self) -> str:
        return self.instrument_id

    @property
    def decimals(self) -> int:
        return self.instrument.decimals

    def clean(self) -> None:
        errors = {}
        if self.kind == AssetKind.CRYPTO:
            if self.instrument_id not in settings.CRYPTO_ALLOWLIST:
                errors["kind"] = (
                    f"{self.instrument_id} is not accepted as crypto collateral; only "
                    f"{', '.join(settings.CRYPTO_ALLOWLIST)} are."
                )
            if self.haircut is not None and self.haircut < settings.CRYPTO_HAIRCUT_FLOOR:
                errors["haircut"] = (
                    f"A crypto haircut must be at least {settings.CRYPTO_HAIRCUT_FLOOR * 100:.0f}%; "
                    f"{self.haircut * 100:.2f}% was asked."
                )
        if self.kind == AssetKind.CASH and self.currency != self.instrument_id:
            errors["currency"] = "Cash is priced in its own currency."
        if errors:
            raise ValidationError(errors)


class HeldForConfirmation(models.Model):
    """What a price or an FX rate carries about its sanity check: accepted, or held (with the reason) until a
    second person confirms or rejects it. Only accepted and confirmed ones are ever used."""

    status = models.CharField(max_length=12, choices=PriceStatus.choices, default=PriceStatus.ACCEPTED)
    held_reason = models.CharField(max_length=300, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="the person who recorded it (empty: a system, e.g. an API key or the oracle)",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def confirmation_constraints(cls, prefix: str) -> list[models.BaseConstraint]:
        return [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("recorded_by")),
                name=f"{prefix}_not_confirmed_by_who_recorded_it",
                violation_error_message="Nobody may confirm or reject a price they recorded.",
            ),
            models.CheckConstraint(
                condition=Q(status=PriceStatus.ACCEPTED, decided_at__isnull=True, held_reason="")
                | Q(status=PriceStatus.UNCONFIRMED, decided_at__isnull=True) & ~Q(held_reason="")
                | Q(status__in=[PriceStatus.CONFIRMED, PriceStatus.REJECTED], decided_at__isnull=False)
                & ~Q(held_reason=""),
                name=f"{prefix}_held_with_a_reason_and_decided_once",
            ),
        ]


class Price(HeldForConfirmation):
    """One observed price of an asset in its price currency, with where and when it came from."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="prices")
    price = price_field()
    currency = models.CharField(max_length=4, choices=CURRENCY_CHOICES)
    source = models.CharField(max_length=100)
    sources = models.JSONField(
        default=list,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="the venue quotes a median was taken from",
    )
    observed_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-observed_at", "-pk"]
        get_latest_by = "observed_at"
        indexes = [
            models.Index(fields=["asset", "-observed_at"]),
            models.Index(
                fields=["asset"], condition=Q(status=PriceStatus.UNCONFIRMED), name="price_unconfirmed_idx"
            ),
        ]
        permissions = [("approve_price", "Can confirm or reject a held price or FX rate")]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="price_positive"),
            *HeldForConfirmation.confirmation_constraints("price"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.price} {self.currency} ({self.source}, {self.observed_at:%Y-%m-%d %H:%M:%S})"


class CurrentPrice(models.Model):
    """The price the platform values an asset at now: one row per asset, replaced when a newer price
    is recorded. The sweep joins this table instead of searching the price history."""

    asset = models.OneToOneField(
        Asset, on_delete=models.CASCADE, related_name="current_price", primary_key=True
    )
    price = models.ForeignKey(Price, on_delete=models.PROTECT, related_name="+")
    is_stale = models.BooleanField(
        default=False, help_text="the last refresh could not confirm the price: no forced sale may run on it"
    )
    stale_reason = models.CharField(max_length=300, blank=True)
    checked_at = models.DateTimeField(
        null=True, blank=True, help_text="when a refresh last looked at this asset"
    )

    def __str__(self) -> str:
        return str(self.price)


class QuoteStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    STALE = "stale", "Stale (older than the limit)"
    OUTLIER = "outlier", "Outlier (outside the band around the median)"
    ERROR = "error", "Error (no answer)"


class PriceQuote(models.Model):
    """One venue's answer (or failure to answer) for one asset in one oracle refresh."""

    refresh_id = models.UUIDField(db_index=True)
    venue = models.CharField(max_length=50)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="quotes")
    market = models.CharField(max_length=20)
    price = price_field(null=True, blank=True)
    currency = models.CharField(max_length=4, choices=CURRENCY_CHOICES)
    quoted_at = models.DateTimeField(
        null=True, blank=True, help_text="the venue's own timestamp, or when received"
    )
    received_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=QuoteStatus.choices)
    error = models.TextField(blank=True)
    chosen_price = models.ForeignKey(
        Price,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="quotes",
        help_text="the median it fed",
    )

    class Meta:
        ordering = ["-received_at", "venue"]
        indexes = [models.Index(fields=["venue", "asset", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.venue} {self.market} {self.price} ({self.get_status_display()})"


class FxRate(HeldForConfirmation):
    """How many units of ``quote`` one unit of ``currency`` buys: USD/HKD 7.78 is currency=USD, quote=HKD."""

    currency = models.CharField(max_length=4, choices=CURRENCY_CHOICES)
    quote = models.CharField(max_length=4, choices=CURRENCY_CHOICES, default="HKD")
    rate = price_field("rate")
    source = models.CharField(max_length=100)
    observed_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-observed_at", "-pk"]
        indexes = [models.Index(fields=["currency", "quote", "-observed_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gt=0), name="fx_rate_positive"),
            models.CheckConstraint(condition=~Q(currency=models.F("quote")), name="fx_rate_two_currencies"),
            *HeldForConfirmation.confirmation_constraints("fx_rate"),
        ]

    def __str__(self) -> str:
        return f"{self.currency}/{self.quote} {self.rate} ({self.source})"


class CollateralPool(models.Model):
    """A client's pledged collateral. What it holds is the balance of its ledger account."""

    client = models.OneToOneField("accounts.Client", on_delete=models.PROTECT, related_name="collateral_pool")
    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="collateral_pool")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client__reference"]

    def __str__(self) -> str:
        return f"Collateral pool of {self.client}"


class CollateralMovement(models.Model):
    pool = models.ForeignKey(CollateralPool, on_delete=models.PROTECT, related_name="movements")
    kind = models.CharField(max_length=10, choices=MovementKind.choices)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    quantity = quantity_field()
    transaction = models.OneToOneField(
        Transaction, on_delete=models.PROTECT, related_name="collateral_movement"
    )
    external_reference = models.CharField(max_length=100, blank=True, help_text="custody system's reference")
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="movement_quantity_positive"),
            models.UniqueConstraint(
                fields=["pool", "external_reference"],
                condition=~Q(external_reference=""),
                name="one_movement_per_custody_reference",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_kind_display()} of {self.quantity.normalize():f} {self.asset_id} ({self.pool.client})"
        )


class CustodyMovement(models.Model):
    """One item of the custody feed: an asset received into or released from a client's free (unpledged)
    holdings at the broker. What the client holds free is the balance of their custody ledger account
    (``AccountKind.CUSTODY``), apart from the pledged pool; this records each change with the custody
    system's reference, which is recorded once per client."""

    client = models.ForeignKey("accounts.Client", on_delete=models.PROTECT, related_name="custody_movements")
    kind = models.CharField(max_length=10, choices=CustodyMovementKind.choices)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    quantity = quantity_field()
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="custody_movement")
    external_reference = models.CharField(max_length=100, help_text="the custody system's reference")
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="custody_movement_quantity_positive"),
            models.CheckConstraint(
                condition=~Q(external_reference=""), name="custody_movement_has_a_reference"
            ),
            models.UniqueConstraint(
                fields=["client", "external_reference"], name="one_custody_movement_per_reference"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.quantity.normalize():f} {self.asset_id} ({self.client})"
