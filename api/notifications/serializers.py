"""API representations of webhook endpoints and events."""

from __future__ import annotations

from rest_framework import serializers

from notifications.models import Event, WebhookEndpoint
from notifications.webhook_endpoints import SECRET_MIN_LENGTH

EVENT_TYPE_REGEX = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"


class WebhookEndpointOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "url", "event_types", "is_active", "created_at"]
        read_only_fields = fields


class WebhookEndpointDeactivatedOut(WebhookEndpointOut):
    messages_cancelled = serializers.IntegerField(
        read_only=True, help_text="messages that were queued for the endpoint (retries too), now never sent"
    )

    class Meta(WebhookEndpointOut.Meta):
        fields = [*WebhookEndpointOut.Meta.fields, "messages_cancelled"]
        read_only_fields = fields


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret = serializers.CharField(
        read_only=True, help_text="the HMAC-SHA256 signing secret: shown here once, never again"
    )

    class Meta(WebhookEndpointOut.Meta):
        fields = [*WebhookEndpointOut.Meta.fields, "secret"]
        read_only_fields = fields


def _event_types(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.RegexField(EVENT_TYPE_REGEX, max_length=60),
        max_length=100,
        help_text="event types to send, e.g. margin_call.issued; empty: every event",
        **kwargs,
    )


class WebhookEndpointIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    url = serializers.URLField(max_length=500)
    event_types = _event_types(required=False, default=list)
    secret = serializers.CharField(
        min_length=SECRET_MIN_LENGTH,
        max_length=100,
        required=False,
        help_text="your own signing secret; left out, one is generated and returned once",
    )


class WebhookEndpointChange(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    url = serializers.URLField(max_length=500, required=False)
    event_types = _event_types(required=False)


class EventOut(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "type", "occurred_at", "client", "subject_type", "subject_id", "summary", "payload"]
        read_only_fields = fields
