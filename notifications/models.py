"""Events and the outbox: an event and one message per destination are written with the change they
report, and delivered afterwards with retries (docs/operations.md, "The outbox")."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from uuid6 import uuid7

from notifications.enums import Channel, DeliveryStatus


class WebhookEndpoint(models.Model):
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100, help_text="shared secret for the HMAC-SHA256 signature")
    event_types = models.JSONField(default=list, blank=True, help_text="event types to send; empty: all")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"

    def wants(self, event_type: str) -> bool:
        return self.is_active and (not self.event_types or event_type in self.event_types)


class Event(models.Model):
    # Time-ordered keys (UUID version 7: a time in milliseconds, then random bits), so that each new event,
    # and each of its messages (whose unique index leads with the event), goes to the right edge of the index
    # rather than to a random page of it: a market move writes thousands, and the tables only grow. Drawn here
    # by ``uuid6.uuid7``, whose keys keep their order within a process by counting on from the last
    # millisecond (a burst of thousands runs a few seconds ahead of the clock); the set-based ladder draws them
    # from ``uuid_v7()`` (migration 0002), the same layout with the statement's clock and no counter.
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    type = models.CharField(max_length=60)
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    # No key check at commit (the ladder writes thousands of events a market move): a client with events cannot
    # be deleted, through the ORM (``PROTECT``) or past it (a trigger, migration 0002), and every writer takes
    # the client from a row it has read.
    client = models.ForeignKey(
        "accounts.Client",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
        db_constraint=False,
    )
    subject_type = models.CharField(max_length=60, blank=True, help_text="what the event is about")
    subject_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=300)
    payload = models.JSONField(encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-occurred_at"]
        # A plain b-tree on the type: filters on it are exact, and the admin's search (a substring) is served by
        # no index, so no pattern-ops twin (what db_index on a CharField adds) to keep up on every event.
        indexes = [models.Index(fields=["subject_type", "subject_id"]), models.Index(fields=["type"])]

    def __str__(self) -> str:
        return f"{self.type}: {self.summary}"


class OutboxMessage(models.Model):
    # No key check: events are append-only (a trigger refuses deleting one), and messages are written from the
    # events just written, in the same statement; a market move writes ten thousand of them, each a check at
    # commit.
    # No index of its own either: the unique constraint below leads with it.
    event = models.ForeignKey(
        Event, on_delete=models.PROTECT, related_name="messages", db_constraint=False, db_index=False
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # No key check either: an endpoint with messages cannot be deleted (``PROTECT``; a trigger, migration 0002),
    # and the writers read the endpoints under ``FOR KEY SHARE`` (``active_endpoints``). Indexed for the webhooks
    # only (``outbox_endpoint_idx``): an e-mail has none.
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
        db_constraint=False,
        db_index=False,
    )
    recipient = models.CharField(max_length=254, blank=True, help_text="e-mail address")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status=DeliveryStatus.PENDING), name="outbox_due_idx"
            ),
            models.Index(
                fields=["endpoint"], condition=Q(endpoint__isnull=False), name="outbox_endpoint_idx"
            ),
        ]
        constraints = [
            # A webhook goes to an endpoint and an e-mail to an address, never both.
            models.CheckConstraint(
                condition=(Q(channel=Channel.WEBHOOK) & Q(endpoint__isnull=False) & Q(recipient=""))
                | (Q(channel=Channel.EMAIL) & Q(endpoint__isnull=True) & ~Q(recipient="")),
                name="outbox_message_has_one_destination",
            ),
            # One message per event and destination (an endpoint, or an address): one index for both channels,
            # which also finds an event's messages. A market move writes ten thousand messages, each an entry in
            # every index of the table.
            models.UniqueConstraint(
                F("event"),
                Coalesce(F("endpoint"), Value(0)),
                F("recipient"),
                name="one_message_per_event_and_destination",
            ),
        ]

    def __str__(self) -> str:
        destination = self.endpoint if self.channel == Channel.WEBHOOK else self.recipient
        return f"{self.event.type} → {destination} ({self.get_status_display()})"
