"""API keys for the broker's systems, and the store that makes a POST safe to retry."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from api.enums import Scope


class ApiKey(models.Model):
    """A credential for one of the broker's systems (order management, custody, market data, CRM).

    Only a SHA-256 digest of the key is stored; the key itself is shown once, when it is created. A key
    is 256 random bits, so a fast digest is as safe as a slow password hash here and costs nothing per
    request. ``prefix`` is the part of the key shown in the admin and in logs to tell keys apart.
    A key acts under its own name: audit events read ``api-key:<name>``."""

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z0-9][a-z0-9._-]*$",
                "Lower-case letters, digits, dots, dashes and underscores, e.g. oms-prod.",
            )
        ],
        help_text="the system that uses the key, e.g. oms-prod; shown in the audit trail",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField("SHA-256 of the key", max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text="what the key may do: " + ", ".join(Scope.values))
    throttle_rate = models.CharField(
        max_length=20,
        blank=True,
        validators=[RegexValidator(r"^[1-9][0-9]*/(s|sec|m|min|h|hour|d|day)$", "For example 600/min.")],
        help_text="requests allowed, e.g. 600/min; empty: the API_THROTTLE_RATE setting",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, help_text="who created the key")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="to the minute")

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(scopes=[]), name="api_key_has_a_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def audit_label(self) -> str:
        return f"api-key:{self.name}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class IdempotencyRecord(models.Model):
    """The first response to a POST that carried an ``Idempotency-Key``, kept so that a retry gets the
    same answer instead of doing the work twice. One row per credential and key; it is inserted before
    the work starts and filled in the same database transaction, so a concurrent retry waits on the
    unique index until the first request has committed, then reads its response."""

    credential = models.CharField(max_length=40, help_text="api-key:<id> or user:<id>")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and body")
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.TextField(blank=True, help_text="the JSON body exactly as first sent")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["credential", "key"], name="one_response_per_idempotency_key"),
        ]

    def __str__(self) -> str:
        return f"{self.credential} {self.key} → {self.status_code}"
