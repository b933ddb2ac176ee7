from django.db import models


class RateKind(models.TextChoices):
    FIXED = "fixed", "Fixed"
    FLOATING = "floating", "Base rate (HIBOR) + spread"


class SweepScope(models.TextChoices):
    """What a sweep run revalued. Only "all" and "moved" runs look at every client posted to since the run
    before them, so only they are the reference point of the next run's "posted to since"."""

    ALL = "all", "Every open facility"
    MOVED = "moved", "Holders of the moved assets, and clients posted to"
    CLIENTS = "clients", "Given clients only"


class FacilityStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    CLOSED = "closed", "Closed"


# --- automatic top-up ---


class TopUpTrigger(models.TextChoices):
    """When a standing top-up instruction moves free holdings into the pool."""

    MARGIN_CALL = "margin_call", "When a margin call is issued"
    WARNING = "warning", "Already at the warning level (and at a margin call)"


class InstructionStatus(models.TextChoices):
    PENDING_SIGN_OFF = "pending_sign_off", "Waiting for staff sign-off"
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"


INSTRUCTION_TRANSITIONS: dict[str, set[str]] = {
    InstructionStatus.PENDING_SIGN_OFF: {InstructionStatus.ACTIVE, InstructionStatus.REVOKED},
    InstructionStatus.ACTIVE: {InstructionStatus.REVOKED},
    InstructionStatus.REVOKED: set(),
}


class TopUpOutcome(models.TextChoices):
    REACHED_TARGET = "reached_target", "Moved enough to reach the target"
    PARTIAL = "partial", "Moved all it could; the rest is still due"
    NOTHING_MOVED = "nothing_moved", "Nothing free could be moved"


# --- end of automatic top-up ---


class MarginStatus(models.TextChoices):
    """Where a facility's margin ratio stands on the policy's ladder."""

    NO_DEBT = "no_debt", "No debt"
    OK = "ok", "Within limits"
    WARNING = "warning", "Warning"
    MARGIN_CALL = "margin_call", "Margin call"
    FORCED_SALE = "forced_sale", "Forced sale"


class MarginCallStatus(models.TextChoices):
    ISSUED = "issued", "Issued"
    CURED = "cured", "Cured"
    ESCALATED = "escalated", "Escalated (deadline passed)"
    FORCED_SALE = "forced_sale", "Forced sale"


OPEN_MARGIN_CALL_STATUSES = (MarginCallStatus.ISSUED, MarginCallStatus.ESCALATED)

MARGIN_CALL_TRANSITIONS: dict[str, set[str]] = {
    MarginCallStatus.ISSUED: {
        MarginCallStatus.CURED,
        MarginCallStatus.ESCALATED,
        MarginCallStatus.FORCED_SALE,
    },
    MarginCallStatus.ESCALATED: {MarginCallStatus.CURED, MarginCallStatus.FORCED_SALE},
    MarginCallStatus.CURED: set(),
    MarginCallStatus.FORCED_SALE: set(),
}


class ForcedSaleTrigger(models.TextChoices):
    THRESHOLD = "threshold", "Ratio reached the forced-sale threshold"
    DEADLINE = "deadline", "Margin call not met by its deadline"
    MANUAL = "manual", "Ordered by staff"


class ForcedSaleStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting staff approval"
    SUBMITTED = "submitted", "Submitted"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    PAUSED = "paused", "Paused"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


OPEN_FORCED_SALE_STATUSES = (
    ForcedSaleStatus.PLANNED,
    ForcedSaleStatus.AWAITING_APPROVAL,
    ForcedSaleStatus.SUBMITTED,
    ForcedSaleStatus.PARTIALLY_FILLED,
    ForcedSaleStatus.PAUSED,
)


class SaleRoute(models.TextChoices):
    VENUE = "venue", "Crypto venue (ccxt)"
    BROKER = "broker", "Broker's order system"


class SaleOrderStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    PLACING = "placing", "Being placed"
    OPEN = "open", "Open at the venue"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled (remainder re-placed or given up)"
    FAILED = "failed", "Failed"


OPEN_SALE_ORDER_STATUSES = (SaleOrderStatus.PLANNED, SaleOrderStatus.PLACING, SaleOrderStatus.OPEN)

FORCED_SALE_TRANSITIONS: dict[str, set[str]] = {
    ForcedSaleStatus.PLANNED: {
        ForcedSaleStatus.AWAITING_APPROVAL,
        ForcedSaleStatus.SUBMITTED,
        ForcedSaleStatus.PAUSED,
        ForcedSaleStatus.FILLED,
        ForcedSaleStatus.CANCELLED,
    },
    ForcedSaleStatus.AWAITING_APPROVAL: {
        ForcedSaleStatus.SUBMITTED,
        ForcedSaleStatus.CANCELLED,
        ForcedSaleStatus.PAUSED,
    },
    ForcedSaleStatus.SUBMITTED: {
        ForcedSaleStatus.PARTIALLY_FILLED,
        ForcedSaleStatus.FILLED,
        ForcedSaleStatus.PAUSED,
        ForcedSaleStatus.FAILED,
    },
    ForcedSaleStatus.PARTIALLY_FILLED: {
        ForcedSaleStatus.FILLED,
        ForcedSaleStatus.PAUSED,
        ForcedSaleStatus.FAILED,
    },
    ForcedSaleStatus.PAUSED: {
        ForcedSaleStatus.PLANNED,
        ForcedSaleStatus.SUBMITTED,
        ForcedSaleStatus.PARTIALLY_FILLED,
        ForcedSaleStatus.CANCELLED,
        ForcedSaleStatus.FAILED,
    },
    ForcedSaleStatus.FILLED: set(),
    ForcedSaleStatus.FAILED: set(),
    ForcedSaleStatus.CANCELLED: set(),
}


class PauseReason(models.TextChoices):
    KILL_SWITCH = "kill_switch", "Kill switch engaged"
    STALE_PRICE = "stale_price", "Price stale"
    UNCONFIRMED_PRICE = "unconfirmed_price", "Price awaiting confirmation"
    PRICE_BAND = "price_band", "Fill price outside the band"
    VENUE_ERRORS = "venue_errors", "Venue kept failing"
    STAFF = "staff", "Paused by staff"
