from __future__ import annotations

import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from accounts.models import hkd_field
from collateral.models import fraction_field, price_field
from financing.enums import (
    FacilityStatus,
    ForcedSaleStatus,
    ForcedSaleTrigger,
    InstructionStatus,
    MarginCallStatus,
    MarginStatus,
    PauseReason,
    RateKind,
    SaleOrderStatus,
    SaleRoute,
    SweepScope,
    TopUpOutcome,
    TopUpTrigger,
)
from ledger.models import Account, Transaction, quantity_field


def rate_field(verbose_name: str, **kwargs) -> models.DecimalField:
    """An annual interest rate as a fraction: 0.065 is 6.5% a year."""
    return models.DecimalField(
        verbose_name,
        max_digits=settings.RATE_MAX_DIGITS,
        decimal_places=settings.RATE_DECIMAL_PLACES,
        **kwargs,
    )


class MarginPolicy(models.Model):
    """Thresholds on the margin ratio R = debt / margin value, and how a forced sale is run."""

    name = models.CharField(max_length=100, unique=True)
    is_default = models.BooleanField(default=False, help_text="the broker-wide default for new facilities")
    max_advance = fraction_field("max advance", default=Decimal("0.85"))
    warning = fraction_field("warning", default=Decimal("0.90"))
    margin_call = models.DecimalField("margin call", max_digits=6, decimal_places=4, default=Decimal("1.00"))
    forced_sale = models.DecimalField("forced sale", max_digits=6, decimal_places=4, default=Decimal("1.20"))
    target = fraction_field("target after cure or sale", default=Decimal("0.85"))
    # At least one: the cure deadline is a business day after the call (the calendar refuses a count of 0).
    cure_business_days = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    cure_time = models.TimeField(default=datetime.time(12, 0), help_text="Hong Kong time on the cure day")
    sale_cost_rate = fraction_field(
        "sale cost allowance",
        default=Decimal("0.0050"),
        help_text="fees and slippage assumed when sizing a sale",
    )
    sale_order = models.JSONField(
        default=list,
        blank=True,
        help_text="symbols in the order they are sold; empty means BTC, ETH, then securities by haircut",
    )
    requires_sale_approval = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "margin policies"
        ordering = ["name"]
        permissions = [("approve_margin_policy", "Can approve a change of a margin policy's thresholds")]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_policy"
            ),
            models.CheckConstraint(
                condition=Q(max_advance__gt=0)
                & Q(max_advance__lte=F("warning"))
                & Q(warning__lte=F("margin_call"))
                & Q(margin_call__lt=F("forced_sale"))
                & Q(target__gt=0)
                & Q(target__lt=F("margin_call")),
                name="policy_thresholds_in_order",
                violation_error_message=(
                    "Thresholds must rise: 0 < max advance ≤ warning ≤ margin call < forced sale, "
                    "and 0 < target < margin call."
                ),
            ),
            models.CheckConstraint(
                condition=Q(cure_business_days__gte=1),
                name="policy_cure_at_least_one_business_day",
                violation_error_message="A margin call gives at least one business day to cure.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.sale_order, list) or not all(isinstance(s, str) for s in self.sale_order):
            raise ValidationError({"sale_order": "A list of asset symbols."})


class BaseRate(models.Model):
    """A published reference rate (e.g. 1-month HIBOR) from a date on."""

    name = models.CharField(max_length=30, default="HIBOR_1M")
    rate = rate_field("rate")
    effective_on = models.DateField()
    source = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["name", "-effective_on"]
        constraints = [
            models.UniqueConstraint(fields=["name", "effective_on"], name="one_base_rate_per_day"),
            models.CheckConstraint(condition=Q(rate__gte=0), name="base_rate_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.rate * 100:.4f}% from {self.effective_on}"


class FirmExposure(models.Model):
    """A single row that drawdowns lock first, so that firm-wide limits are checked one at a time."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="firm_exposure_single_row")]

    def __str__(self) -> str:
        return "Firm-wide exposure lock"


class Facility(models.Model):
    """A credit line for one client: a limit, a rate and a margin policy, secured by the client's pool."""

    reference = models.CharField(max_length=20, unique=True)
    client = models.ForeignKey("accounts.Client", on_delete=models.PROTECT, related_name="facilities")
    limit = hkd_field("facility limit")
    rate_kind = models.CharField(max_length=10, choices=RateKind.choices, default=RateKind.FIXED)
    fixed_rate = rate_field("fixed rate", null=True, blank=True)
    base_rate_name = models.CharField(max_length=30, blank=True, default="")
    spread = rate_field("spread over the base rate", default=Decimal(0))
    policy = models.ForeignKey(
        MarginPolicy, null=True, blank=True, on_delete=models.PROTECT, help_text="empty: the default policy"
    )
    status = models.CharField(max_length=10, choices=FacilityStatus.choices, default=FacilityStatus.ACTIVE)
    opened_on = models.DateField()
    principal_account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="+")
    interest_account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="+")
    fees_account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="+")
    # Indexed: a price-driven sweep takes in the facilities opened since the previous sweep.
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name_plural = "facilities"
        ordering = ["reference"]
        constraints = [
            models.CheckConstraint(condition=Q(limit__gt=0), name="facility_limit_positive"),
            models.CheckConstraint(
                condition=(Q(rate_kind=RateKind.FIXED) & Q(fixed_rate__isnull=False) & Q(fixed_rate__gte=0))
                | (Q(rate_kind=RateKind.FLOATING) & ~Q(base_rate_name="")),
                name="facility_rate_complete",
                violation_error_message="A fixed rate needs the rate; a floating rate needs a base rate name.",
            ),
            models.UniqueConstraint(
                fields=["client"],
                condition=~Q(status=FacilityStatus.CLOSED),
                name="one_open_facility_per_client",
                violation_error_message="The client already has an open facility.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.client.name})"


class Drawdown(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="drawdowns")
    amount = hkd_field("amount")
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="drawdown")
    margin_ratio_after = models.DecimalField(max_digits=20, decimal_places=8, null=True)
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="drawdown_amount_positive")]

    def __str__(self) -> str:
        return f"Drawdown of {self.amount} on {self.facility.reference}"


class Repayment(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="repayments")
    amount = hkd_field("amount")
    to_fees = hkd_field("applied to fees", default=0)
    to_interest = hkd_field("applied to interest", default=0)
    to_principal = hkd_field("applied to principal", default=0)
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="repayment")
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="repayment_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount=F("to_fees") + F("to_interest") + F("to_principal")),
                name="repayment_fully_allocated",
            ),
        ]

    def __str__(self) -> str:
        return f"Repayment of {self.amount} on {self.facility.reference}"


class InterestAccrual(models.Model):
    """Interest for the calendar days up to and including ``accrual_date`` since the previous accrual,
    ACT/365 day by day on the principal outstanding at each day's end. At most one per facility and date."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="interest_accruals")
    accrual_date = models.DateField()
    days = models.PositiveSmallIntegerField()
    principal = hkd_field("principal", help_text="at the end of the accrual date")
    annual_rate = rate_field("annual rate", help_text="on the accrual date")
    amount = hkd_field("interest")
    daily = models.JSONField(
        default=list, blank=True, help_text="each day's principal (at its end) and annual rate"
    )
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="interest_accrual"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-accrual_date", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["facility", "accrual_date"], name="one_accrual_per_facility_and_date"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="interest_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Interest {self.amount} on {self.facility.reference} to {self.accrual_date}"


class MarginCall(models.Model):
    """A demand to bring the margin ratio back to target by a deadline. While one is open the facility
    gets no new advances."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="margin_calls")
    status = models.CharField(
        max_length=12, choices=MarginCallStatus.choices, default=MarginCallStatus.ISSUED
    )
    ratio_at_issue = models.DecimalField(
        max_digits=20, decimal_places=8, null=True, help_text="empty: infinite"
    )
    debt_at_issue = hkd_field("debt at issue")
    margin_value_at_issue = hkd_field("margin value at issue")
    repayment_due = hkd_field("repayment that cures it")
    top_up_due = hkd_field("cash top-up that cures it")
    deadline = models.DateTimeField()
    issued_at = models.DateTimeField(auto_now_add=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-issued_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["facility"],
                condition=Q(status__in=[MarginCallStatus.ISSUED, MarginCallStatus.ESCALATED]),
                name="one_open_margin_call_per_facility",
            )
        ]

    def __str__(self) -> str:
        return self.label_of(self.pk, self.facility.reference, self.status)

    @staticmethod
    def label_of(pk: int | None, reference: str, status: str) -> str:
        """How a call reads, from plain values (the ladder names thousands of calls in its audit records
        without loading them). The label straight from the enum: get_status_display() rebuilds the
        choices on each call."""
        return f"Margin call #{pk} on {reference} ({MarginCallStatus(status).label})"


def ratio_field(verbose_name: str = "margin ratio", **kwargs) -> models.DecimalField:
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=8, **kwargs)


def hkd_amount_field(verbose_name: str, **kwargs) -> models.DecimalField:
    """An HKD figure in the sweep's high-volume tables. Plain decimals, not django-money: these tables are
    always in the reporting currency and are written by set-based SQL, where a currency column per figure
    would only add width."""
    return models.DecimalField(
        f"{verbose_name} (HKD)",
        max_digits=settings.MONEY_MAX_DIGITS,
        decimal_places=settings.MONEY_DECIMAL_PLACES,
        **kwargs,
    )


class MarginState(models.Model):
    """Where a facility stood at its last valuation: what the sweep compares a new valuation with, so that
    it writes only what changed. ``notified_status`` is the status the margin-call ladder has acted on;
    while it differs from ``status`` the ladder has work to do (kept in the table, so a crash between the
    valuation and the ladder loses nothing). Kept apart from ``Facility`` so that the sweep's updates never
    wait on a drawdown's row lock. Its pages are kept half empty (fillfactor, migration 0002), so that the
    sweep's updates of the figures are heap-only: no index is touched unless the status changes.

    It also holds all else a price-driven sweep reads of a facility, so that such a sweep reads this table
    alone: the facility's policy (set when the facility opens, never changed after), whether the facility is
    open (``facility_status_change`` keeps it), and the fixed part of its pool's valuation (``fixed_*``): what a
    crypto price move leaves as it is — the market value and margin value of everything but the crypto, the
    pool market value from which no concentration cut applies to any of it, and the crypto quantities — as
    worked out from the pool's positions by a sweep. A sweep after a crypto move values the pool from it and
    the new crypto prices (the same rounding, position by position) instead of from its positions. Derived
    data, written only by the sweep, which works it out again whenever the holdings may have moved; trusted
    only while ``fixed_basis`` is the fingerprint of the current prices, FX rates and terms of every other
    asset and the holdings have not moved since the previous sweep (``financing.sweep``)."""

    facility = models.OneToOneField(
        Facility, on_delete=models.CASCADE, primary_key=True, related_name="margin_state"
    )
    market_value = hkd_amount_field("market value")
    margin_value = hkd_amount_field("margin value")
    debt = hkd_amount_field("debt")
    margin_ratio = ratio_field(null=True, blank=True, help_text="empty with debt: infinite")
    status = models.CharField(max_length=12, choices=MarginStatus.choices, default=MarginStatus.NO_DEBT)
    notified_status = models.CharField(
        max_length=12, choices=MarginStatus.choices, default=MarginStatus.NO_DEBT
    )
    valued_at = models.DateTimeField()
    status_since = models.DateTimeField()
    # A copy of the facility's (which the database checks): no key check of its own, so that the sweep's tens
    # of thousands of updates fire no trigger.
    policy = models.ForeignKey(
        MarginPolicy,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
        help_text="the facility's (empty: the default policy)",
    )
    open = models.BooleanField(default=True, help_text="the facility is not closed")
    fixed_basis = models.CharField(
        max_length=64, blank=True, help_text="fingerprint of the prices, FX rates and terms it was valued on"
    )
    fixed_market_value = hkd_amount_field("market value, crypto apart", null=True, blank=True)
    fixed_margin_value = hkd_amount_field(
        "margin value, crypto apart, before concentration cuts", null=True, blank=True
    )
    fixed_uncapped_from = hkd_amount_field(
        "no concentration cut from",
        null=True,
        blank=True,
        help_text="empty: no eligible non-crypto position has a limit",
    )
    fixed_crypto = models.JSONField(
        null=True, blank=True, help_text="crypto quantities held, by symbol (exact, as text)"
    )
    fixed_valued_at = models.DateTimeField(null=True, blank=True)
    # The facility's outstanding principal, kept by the sweep with the debt (read again from the ledger for
    # the clients posted to): what the firm's totals (``FirmTotals``) add up. A default in the database, so
    # that the sweep's own inserts need not name it.
    principal = hkd_amount_field("principal", default=Decimal(0), db_default=Decimal(0))

    class Meta:
        indexes = [
            models.Index(fields=["status"]),
            # The largest loan, read after every sweep (one index entry). Principal changes only with a posting,
            # so the sweep's updates of the figures stay heap-only.
            models.Index(
                fields=["-principal", "facility"],
                condition=Q(open=True),
                name="margin_state_largest_loan_idx",
            ),
            # The closed facilities' states, which the firm's totals set apart (few; ``open`` changes once).
            models.Index(fields=["facility"], condition=Q(open=False), name="margin_state_closed_idx"),
            models.Index(
                fields=["facility"],
                condition=~Q(status=F("notified_status")),
                name="margin_state_ladder_due_idx",
            ),
            # A price-driven sweep finds the states whose part was worked out on another basis by it (usually
            # none): the sweep's updates leave the basis as it is, and stay heap-only.
            models.Index(fields=["fixed_basis"], name="margin_state_fixed_basis_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.facility_id}: {self.get_status_display()}"


class RatioSnapshot(models.Model):
    """The margin ratio of a facility each time it moved (by the sweep's write rule): the history for charts and
    audits. On PostgreSQL the table is partitioned by day on ``taken_at`` (migration 0004; its key is then
    ``(id, taken_at)``), and partitions past the raw retention are dropped once rolled up
    (``RatioRollup``, ``financing.retention``); elsewhere a plain table whose old rows are deleted."""

    # No database foreign key and no index of its own (the composite index below leads with it): the sweep
    # writes tens of thousands of snapshots per price move, straight from the facilities it has just read
    # in the same statement, and facilities are never deleted. The key's per-row check at commit cost more
    # than a quarter of the whole valuation (measured: 280 ms for 69,618 snapshots).
    facility = models.ForeignKey(
        Facility, on_delete=models.CASCADE, related_name="snapshots", db_constraint=False, db_index=False
    )
    taken_at = models.DateTimeField()
    market_value = hkd_amount_field("market value")
    margin_value = hkd_amount_field("margin value")
    debt = hkd_amount_field("debt")
    margin_ratio = ratio_field(null=True, blank=True)
    status = models.CharField(max_length=12, choices=MarginStatus.choices)

    class Meta:
        ordering = ["-taken_at", "-pk"]
        indexes = [models.Index(fields=["facility", "-taken_at"])]

    def __str__(self) -> str:
        return f"{self.facility_id} at {self.taken_at:%Y-%m-%d %H:%M:%S}: {self.margin_ratio}"


class RatioRollup(models.Model):
    """A facility's ratio over one hour or one day, rolled up from the snapshots before they are dropped: what
    stood at the period's end (the last snapshot in it, with its moment), and the lowest and highest ratio
    in it. The charts and statements read it for periods older than the raw snapshots kept
    (``financing.history.ratio_history``). Daily rollups are made from the hourly ones."""

    class Period(models.TextChoices):
        HOUR = "hour", "hour"
        DAY = "day", "day"

    facility = models.ForeignKey(
        Facility, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    period = models.CharField(max_length=4, choices=Period.choices)
    starts_at = models.DateTimeField()
    taken_at = models.DateTimeField(help_text="when the last snapshot in the period was taken")
    market_value = hkd_amount_field("market value")
    margin_value = hkd_amount_field("margin value")
    debt = hkd_amount_field("debt")
    margin_ratio = ratio_field(null=True, blank=True)
    status = models.CharField(max_length=12, choices=MarginStatus.choices)
    lowest_ratio = ratio_field("lowest margin ratio", null=True, blank=True)
    highest_ratio = ratio_field("highest margin ratio", null=True, blank=True, help_text="empty: infinite")
    snapshots = models.PositiveIntegerField(help_text="snapshots rolled up")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["facility", "period", "starts_at"], name="ratio_rollup_unique"),
        ]
        indexes = [models.Index(fields=["period", "starts_at"], name="ratio_rollup_period_idx")]

    def __str__(self) -> str:
        return f"{self.facility_id} {self.period} from {self.starts_at:%Y-%m-%d %H:%M}: {self.margin_ratio}"


class RetentionMark(models.Model):
    """Where the retention task has got to (``financing.retention``): how far snapshots are rolled up, and from
    when raw snapshots and hourly rollups are still kept. ``ratio_history`` reads each from its own range."""

    name = models.CharField(max_length=40, primary_key=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.at:%Y-%m-%d %H:%M}"


class SweepRun(models.Model):
    """One run of the margin sweep: what started it, what it looked at, what it wrote, how long it took."""

    trigger = models.CharField(max_length=20)
    scope = models.CharField(max_length=10, choices=SweepScope.choices, default=SweepScope.ALL)
    symbols = models.JSONField(
        default=list, blank=True, help_text="assets whose prices moved; empty: all pools"
    )
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    facilities_valued = models.PositiveIntegerField(default=0)
    states_changed = models.PositiveIntegerField(default=0)
    snapshots_written = models.PositiveIntegerField(default=0)
    ladder_actions = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    scope_ms = models.PositiveIntegerField(
        default=0, help_text="of which finding the facilities in scope, with their thresholds, state and debt"
    )
    ladder_ms = models.PositiveIntegerField(default=0, help_text="of which the margin-call ladder")
    valued_from_fixed_part = models.PositiveIntegerField(
        default=0,
        help_text="of the facilities valued, those valued from their pool's fixed part and crypto prices",
    )

    class Meta:
        ordering = ["-started_at"]
        # Held here, by the monitoring the schedules keep alive: django-celery-beat's models are not ours.
        permissions = [
            (
                "approve_schedule_change",
                "Can approve disabling, deleting or slowing a margin-critical schedule",
            )
        ]

    def __str__(self) -> str:
        return f"Sweep {self.started_at:%Y-%m-%d %H:%M:%S} ({self.trigger})"


class FirmTotals(models.Model):
    """The firm's figures as one sweep left the margin states: facilities by margin status, the outstanding
    principal and the largest loan — what the staff console's overview shows, read as one row. Written by the
    sweep in its own transaction (``financing.monitoring.totals``): a full sweep counts the states afresh; any
    other sweep adds what it changed to the previous row's tally (``tally_*``, every state, closed ones too),
    and sets the closed facilities' states apart again (one read of a small index)."""

    run = models.OneToOneField(SweepRun, on_delete=models.CASCADE, related_name="firm_totals")
    recounted = models.BooleanField(help_text="counted afresh from the margin states, not added to the last")
    tally_by_status = models.JSONField(help_text="every margin state, closed ones too, by status")
    tally_principal = hkd_amount_field("principal of every margin state")
    by_status = models.JSONField(help_text="open facilities by margin status")
    facilities_open = models.PositiveIntegerField()
    lending = hkd_amount_field("outstanding principal of the open facilities")
    largest_facility = models.ForeignKey(
        Facility, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    largest_loan = hkd_amount_field("the largest facility's principal", null=True, blank=True)
    tally_listed = models.PositiveIntegerField(
        null=True, blank=True, help_text="every margin state on the at-risk list, closed ones too"
    )
    listed = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="open facilities at warning or worse, or within NEAR_WARNING of their warning level",
    )

    class Meta:
        verbose_name_plural = "firm totals"

    def __str__(self) -> str:
        return f"Firm totals of {self.run}"


class ForcedSale(models.Model):
    """Collateral sold to bring the margin ratio back to target (planned and executed by the forced-sale
    services; the sweep and the deadline check only request it)."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="forced_sales")
    margin_call = models.ForeignKey(
        MarginCall, null=True, blank=True, on_delete=models.PROTECT, related_name="forced_sales"
    )
    trigger = models.CharField(max_length=10, choices=ForcedSaleTrigger.choices)
    status = models.CharField(
        max_length=20, choices=ForcedSaleStatus.choices, default=ForcedSaleStatus.PLANNED
    )
    ratio_at_request = ratio_field(null=True, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=300, blank=True)
    pause_reason = models.CharField(max_length=20, choices=PauseReason.choices, blank=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    plan = models.JSONField(
        encoder=DjangoJSONEncoder, default=dict, blank=True, help_text="figures the plan was made on"
    )
    first_plan = models.JSONField(
        encoder=DjangoJSONEncoder,
        default=dict,
        blank=True,
        help_text="the plan as first made (``plan`` is made again as fills arrive)",
    )
    shortfall = hkd_amount_field(
        "shortfall", default=Decimal(0), help_text="debt left unsecured when the pool ran out"
    )
    proceeds = hkd_amount_field("proceeds", default=Decimal(0), help_text="net proceeds received so far")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    planned_on_prices = models.ManyToManyField(
        "collateral.Price",
        blank=True,
        related_name="forced_sales_planned_on",
        help_text="the prices each plan was made on (kept whole by the retention of prices and quotes)",
    )
    planned_on_fx_rates = models.ManyToManyField(
        "collateral.FxRate",
        blank=True,
        related_name="forced_sales_planned_on",
        help_text="the FX rates each plan was made on",
    )

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["facility"],
                condition=Q(
                    status__in=[
                        ForcedSaleStatus.PLANNED,
                        ForcedSaleStatus.AWAITING_APPROVAL,
                        ForcedSaleStatus.SUBMITTED,
                        ForcedSaleStatus.PARTIALLY_FILLED,
                        ForcedSaleStatus.PAUSED,
                    ]
                ),
                name="one_open_forced_sale_per_facility",
            )
        ]
        permissions = [
            ("approve_forcedsale", "Can approve a forced sale before it is submitted"),
            ("record_fill", "Can record fills of securities sale orders"),
        ]

    def __str__(self) -> str:
        return self.label_of(self.pk, self.facility.reference, self.status)

    @staticmethod
    def label_of(pk: int | None, reference: str, status: str) -> str:
        """How a sale reads, from plain values (see ``MarginCall.label_of``)."""
        return f"Forced sale #{pk} on {reference} ({ForcedSaleStatus(status).label})"


class SaleOrder(models.Model):
    """One asset's part of a forced sale: a sell order at a crypto venue or through the broker's order
    system. Its client order id is derived from the sale, the order and the attempt, so a retry can always
    find what an earlier attempt placed and never places a second order."""

    forced_sale = models.ForeignKey(ForcedSale, on_delete=models.PROTECT, related_name="orders")
    asset = models.ForeignKey("collateral.Asset", on_delete=models.PROTECT, related_name="+")
    route = models.CharField(max_length=10, choices=SaleRoute.choices)
    venue = models.CharField(max_length=50, blank=True)
    quantity = quantity_field()
    status = models.CharField(max_length=12, choices=SaleOrderStatus.choices, default=SaleOrderStatus.PLANNED)
    attempt = models.PositiveSmallIntegerField(
        default=1, help_text="placements so far (a re-placed remainder counts)"
    )
    client_order_id = models.CharField(max_length=64, unique=True)
    venue_order_id = models.CharField(max_length=100, blank=True)
    reference_price = price_field("oracle price when placed", null=True, blank=True)
    limit_price = price_field("limit price", null=True, blank=True)
    price_currency = models.CharField(max_length=4)
    filled_quantity = quantity_field(default=Decimal(0))
    filled_cost = price_field("filled value (price currency)", default=Decimal(0))
    fees = price_field("fees (price currency)", default=Decimal(0))
    errors = models.PositiveSmallIntegerField(default=0, help_text="venue errors in a row")
    last_error = models.TextField(blank=True)
    placed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["forced_sale_id", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="sale_order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=F("quantity")),
                name="sale_order_never_overfilled",
            ),
        ]

    def __str__(self) -> str:
        return f"Sell {self.quantity.normalize():f} {self.asset_id} ({self.client_order_id}, {self.get_status_display()})"

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


class SaleFill(models.Model):
    """A quantity sold at a price: its proceeds are posted to the ledger and applied to the debt. One row
    per fill, so a fill reported twice is recorded once."""

    order = models.ForeignKey(SaleOrder, on_delete=models.PROTECT, related_name="fills")
    fill_key = models.CharField(max_length=100, help_text="the venue's or order system's id for the fill")
    quantity = quantity_field()
    price = price_field()
    fee = price_field("fee (price currency)", default=Decimal(0))
    proceeds = hkd_amount_field("net proceeds")
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="sale_fill")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order_id", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["order", "fill_key"], name="one_fill_per_key"),
            models.CheckConstraint(
                condition=Q(quantity__gt=0) & Q(price__gt=0) & Q(fee__gte=0), name="fill_values_sane"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity.normalize():f} {self.order.asset_id} at {self.price}"


class KillSwitch(models.Model):
    """One row. While engaged, no forced sale is submitted or continued. Engaging is immediate; lifting it
    takes a second member of staff (four-eyes)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    engaged = models.BooleanField(default=False)
    reason = models.CharField(max_length=300, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("engage_killswitch", "Can engage the forced-sale kill switch"),
            ("lift_killswitch", "Can approve lifting the kill switch"),
        ]
        constraints = [models.CheckConstraint(condition=Q(id=1), name="kill_switch_single_row")]

    def __str__(self) -> str:
        return "Kill switch: " + ("ENGAGED" if self.engaged else "off")


# --- automatic top-up ---


class StandingTopUpInstruction(models.Model):
    """A client's standing instruction to move free (unpledged) holdings at the broker into the collateral
    pool when a margin call is issued — or already at the warning level — just enough to bring the ratio to
    target: cash first (HKD, then other currencies), then ``asset_order``. It takes effect when a member of
    staff other than the requester signs it off (a four-eyes approval of kind ``standing_top_up``) and
    stops at once when the client or staff revoke it. At most one is active per client."""

    client = models.ForeignKey(
        "accounts.Client", on_delete=models.PROTECT, related_name="standing_top_up_instructions"
    )
    trigger = models.CharField(max_length=12, choices=TopUpTrigger.choices, default=TopUpTrigger.MARGIN_CALL)
    asset_order = models.JSONField(
        default=list,
        blank=True,
        help_text="symbols of the assets that may be moved after cash, in the client's order",
    )
    status = models.CharField(
        max_length=20, choices=InstructionStatus.choices, default=InstructionStatus.PENDING_SIGN_OFF
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="the client user or member of staff who asked for it",
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        permissions = [("approve_standing_top_up", "Can sign off standing top-up instructions")]
        constraints = [
            models.UniqueConstraint(
                fields=["client"],
                condition=Q(status=InstructionStatus.ACTIVE),
                name="one_active_top_up_instruction_per_client",
                violation_error_message="The client already has an active standing top-up instruction.",
            ),
            models.UniqueConstraint(
                fields=["client"],
                condition=Q(status=InstructionStatus.PENDING_SIGN_OFF),
                name="one_pending_top_up_instruction_per_client",
                violation_error_message="The client already has a standing top-up instruction waiting for sign-off.",
            ),
            models.CheckConstraint(
                condition=Q(signed_off_by__isnull=True) | ~Q(signed_off_by=F("requested_by")),
                name="top_up_instruction_not_signed_off_by_requester",
                violation_error_message="Nobody may sign off their own standing instruction.",
            ),
            models.CheckConstraint(
                condition=Q(
                    status=InstructionStatus.PENDING_SIGN_OFF,
                    signed_off_by__isnull=True,
                    signed_off_at__isnull=True,
                    revoked_at__isnull=True,
                )
                | Q(
                    status=InstructionStatus.ACTIVE,
                    signed_off_by__isnull=False,
                    signed_off_at__isnull=False,
                    revoked_at__isnull=True,
                )
                | Q(status=InstructionStatus.REVOKED, revoked_by__isnull=False, revoked_at__isnull=False),
                name="top_up_instruction_status_recorded",
            ),
        ]

    def __str__(self) -> str:
        return f"Standing top-up #{self.pk} of {self.client} ({self.get_status_display().lower()})"

    def clean(self) -> None:
        if not isinstance(self.asset_order, list) or not all(isinstance(s, str) for s in self.asset_order):
            raise ValidationError({"asset_order": "A list of asset symbols."})

    def acts_on(self, trigger: str) -> bool:
        """Whether an active instruction moves anything for ``trigger``: a margin call always; a warning
        only when the client chose the warning trigger."""
        return self.status == InstructionStatus.ACTIVE and (
            trigger == TopUpTrigger.MARGIN_CALL or self.trigger == TopUpTrigger.WARNING
        )

    @property
    def order_in_words(self) -> str:
        return ", ".join(["cash", *self.asset_order])


class AutomaticTopUp(models.Model):
    """One run of a standing instruction on a facility: what moved from the client's free custody holdings
    into the pool (one ledger transaction, one line per asset), where the margin ratio went and what was
    still due; or that nothing free could be moved, and why."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="automatic_top_ups")
    instruction = models.ForeignKey(
        StandingTopUpInstruction, on_delete=models.PROTECT, related_name="top_ups"
    )
    margin_call = models.ForeignKey(
        MarginCall, null=True, blank=True, on_delete=models.PROTECT, related_name="automatic_top_ups"
    )
    trigger = models.CharField(max_length=12, choices=TopUpTrigger.choices)
    outcome = models.CharField(max_length=20, choices=TopUpOutcome.choices)
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="automatic_top_up"
    )
    debt = hkd_field("debt")
    margin_value_before = hkd_field("margin value before")
    margin_value_after = hkd_field("margin value after")
    ratio_before = ratio_field("margin ratio before", null=True, blank=True, help_text="empty: infinite")
    ratio_after = ratio_field("margin ratio after", null=True, blank=True, help_text="empty: infinite")
    still_due_repayment = hkd_field("repayment still due")
    still_due_top_up = hkd_field("cash top-up still due")
    skipped = models.JSONField(
        default=list, blank=True, help_text="free holdings not moved, each with the reason"
    )
    free_holdings_after = models.JSONField(
        default=dict, blank=True, help_text="what the client held free after this run (symbol → quantity)"
    )
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(outcome=TopUpOutcome.NOTHING_MOVED) & Q(transaction__isnull=True))
                | (~Q(outcome=TopUpOutcome.NOTHING_MOVED) & Q(transaction__isnull=False)),
                name="automatic_top_up_transaction_when_moved",
            )
        ]

    def __str__(self) -> str:
        return (
            f"Automatic top-up #{self.pk} on {self.facility.reference} ({self.get_outcome_display().lower()})"
        )


class AutomaticTopUpTransfer(models.Model):
    """One asset moved by an automatic top-up from the client's free holdings into the pool."""

    top_up = models.ForeignKey(AutomaticTopUp, on_delete=models.PROTECT, related_name="transfers")
    position = models.PositiveSmallIntegerField(help_text="its place in the order: cash first")
    asset = models.ForeignKey("collateral.Asset", on_delete=models.PROTECT, related_name="+")
    quantity = quantity_field()
    market_value = hkd_field("market value")

    class Meta:
        ordering = ["top_up_id", "position"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="top_up_transfer_quantity_positive"),
            models.UniqueConstraint(fields=["top_up", "asset"], name="one_transfer_per_asset_and_top_up"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity.normalize():f} {self.asset_id} into the pool"
