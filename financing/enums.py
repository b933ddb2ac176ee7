from django.db import models


class RateKind(models.TextChoices):
    FIXED = "fixed", "Fixed"
    FLOATING = "floating", "Base rate (HIBOR) + spread"


class FacilityStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    CLOSED = "closed", "Closed"


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
