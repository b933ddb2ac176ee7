from django.db import models


class ClientKind(models.TextChoices):
    INDIVIDUAL = "individual", "Individual"
    CORPORATION = "corporation", "Corporation"
    PARTNERSHIP = "partnership", "Partnership"
    TRUST_CORPORATION = "trust_corporation", "Trust corporation"


class KycStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class InternalRating(models.TextChoices):
    AAA = "AAA", "AAA"
    AA = "AA", "AA"
    A = "A", "A"
    BBB = "BBB", "BBB"
    BB = "BB", "BB"
    B = "B", "B"
    CCC = "CCC", "CCC"
    D = "D", "D (default)"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


# The approval workflow: pending is the only state a decision can leave.
APPROVAL_TRANSITIONS: dict[str, set[str]] = {
    ApprovalStatus.PENDING: {ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.CANCELLED},
    ApprovalStatus.APPROVED: set(),
    ApprovalStatus.REJECTED: set(),
    ApprovalStatus.CANCELLED: set(),
}
