from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from djmoney.models.fields import MoneyField
from djmoney.models.validators import MinMoneyValidator

from accounts.calculations import Eligibility, financing_eligibility
from accounts.enums import ApprovalStatus, ClientKind, InternalRating, KycStatus


def hkd_field(verbose_name: str, **kwargs) -> MoneyField:
    """An amount in Hong Kong dollars, to the cent."""
    return MoneyField(
        verbose_name,
        max_digits=settings.MONEY_MAX_DIGITS,
        decimal_places=settings.MONEY_DECIMAL_PLACES,
        default_currency="HKD",
        currency_choices=[("HKD", "Hong Kong Dollar")],
        **kwargs,
    )


class User(AbstractUser):
    """Staff log in to the admin; client users log in to the portal and see only their own client."""

    client = models.ForeignKey(
        "accounts.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(client__isnull=True) | Q(is_staff=False, is_superuser=False),
                name="client_user_is_not_staff",
                violation_error_message="A client user cannot be staff.",
            )
        ]

    @property
    def is_client_user(self) -> bool:
        return self.client_id is not None


class Client(models.Model):
    reference = models.CharField(max_length=20, unique=True, editable=False)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=ClientKind.choices)
    email = models.EmailField(blank=True)
    kyc_status = models.CharField(max_length=10, choices=KycStatus.choices, default=KycStatus.PENDING)
    pi_portfolio_value = hkd_field(
        "portfolio value (professional-investor evidence)",
        null=True,
        blank=True,
        validators=[MinMoneyValidator(0)],
    )
    pi_total_assets = hkd_field(
        "total assets (professional-investor evidence)",
        null=True,
        blank=True,
        validators=[MinMoneyValidator(0)],
    )
    pi_assessed_on = models.DateField("professional-investor assessment date", null=True, blank=True)
    pi_expires_on = models.DateField("assessment expires on", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference"]
        permissions = [
            ("approve_client_assessment", "Can approve KYC and professional-investor assessment changes")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(pi_portfolio_value__isnull=True) | Q(pi_portfolio_value__gte=0),
                name="client_portfolio_value_not_negative",
                violation_error_message="The portfolio value cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(pi_total_assets__isnull=True) | Q(pi_total_assets__gte=0),
                name="client_total_assets_not_negative",
                violation_error_message="Total assets cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(pi_expires_on__isnull=True)
                | Q(pi_assessed_on__isnull=False, pi_expires_on__gte=F("pi_assessed_on")),
                name="client_assessment_expires_after_it_is_made",
                violation_error_message="An assessment cannot expire before it is made.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.name}"

    def eligibility(self, today=None) -> Eligibility:
        return financing_eligibility(
            kind=self.kind,
            kyc_status=self.kyc_status,
            portfolio_value=self.pi_portfolio_value.amount if self.pi_portfolio_value is not None else None,
            total_assets=self.pi_total_assets.amount if self.pi_total_assets is not None else None,
            assessed_on=self.pi_assessed_on,
            expires_on=self.pi_expires_on,
            today=today or timezone.localdate(),
            portfolio_threshold=settings.PI_PORTFOLIO_THRESHOLD_HKD,
            total_assets_threshold=settings.PI_TOTAL_ASSETS_THRESHOLD_HKD,
        )


class CreditProfile(models.Model):
    """The credit view of a client. The approved limit changes only through a four-eyes approval."""

    client = models.OneToOneField(Client, on_delete=models.PROTECT, related_name="credit_profile")
    internal_rating = models.CharField(max_length=3, choices=InternalRating.choices)
    credit_limit = hkd_field("approved credit limit", default=0, validators=[MinMoneyValidator(0)])
    next_review_on = models.DateField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client__reference"]
        permissions = [("approve_credit_limit", "Can approve credit limit changes")]
        constraints = [
            models.CheckConstraint(
                condition=Q(credit_limit__gte=0),
                name="credit_limit_not_negative",
                violation_error_message="A credit limit cannot be negative.",
            )
        ]

    def __str__(self) -> str:
        return f"Credit profile of {self.client}"


class ApprovalRequest(models.Model):
    """A change that takes effect only when a second staff member approves it (maker-checker).

    ``kind`` names an entry of the approval registry (``accounts.approvals``); later apps register
    their own kinds (haircut changes, manual overrides) without touching this model.
    """

    kind = models.CharField(max_length=50, db_index=True)
    target_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    target_id = models.CharField(max_length=64)
    target = GenericForeignKey("target_type", "target_id")
    target_repr = models.CharField(max_length=200)
    current = models.JSONField("value before", encoder=DjangoJSONEncoder, default=dict)
    proposed = models.JSONField("proposed value", encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_requests_made"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="approval_requests_decided",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="approval_not_by_requester",
                violation_error_message="Nobody may approve or reject their own request.",
            ),
            models.CheckConstraint(
                condition=Q(status=ApprovalStatus.PENDING, decided_by__isnull=True, decided_at__isnull=True)
                | Q(status=ApprovalStatus.CANCELLED, decided_by__isnull=True, decided_at__isnull=False)
                | Q(
                    status__in=[ApprovalStatus.APPROVED, ApprovalStatus.REJECTED],
                    decided_by__isnull=False,
                    decided_at__isnull=False,
                ),
                name="approval_decision_recorded",
            ),
            models.UniqueConstraint(
                fields=["kind", "target_type", "target_id"],
                condition=Q(status=ApprovalStatus.PENDING),
                name="one_pending_request_per_change",
                violation_error_message="There is already a pending request for this change.",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} of {self.target_repr} ({self.get_status_display()})"


class AuditEvent(models.Model):
    """One state change: who, what, on which object, before and after, when. Append-only: the model
    refuses updates and deletes, the admin is read-only, and on PostgreSQL a trigger refuses them too."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="who acted: a user, an API key or the system")
    action = models.CharField(max_length=80)
    # Found by the index on (target type, target id, time) below, which leads with it. No key check: content
    # types are Django's own rows, read by every audit write (thousands when the ladder acts on a market
    # move, each a check at commit), and deleting one the audit trail names is refused here (PROTECT).
    target_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, db_index=False, db_constraint=False
    )
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(encoder=DjangoJSONEncoder, null=True, blank=True)
    after = models.JSONField(encoder=DjangoJSONEncoder, null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        # Plain b-tree indexes: filters on the action are exact, and the admin's search (a substring) is served
        # by none, so no pattern-ops twin (what db_index on a CharField adds) to keep up on every write.
        indexes = [
            models.Index(fields=["target_type", "target_id", "created_at"]),
            models.Index(fields=["action"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit events are append-only and cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only and cannot be deleted.")
