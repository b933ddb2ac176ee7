"""API: webhook endpoints (the broker's own) and the event feed."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from api.enums import Scope
from api.filters import BooleanFilter, FilterSet, IdFilter, TimeFilter
from api.notifications.serializers import (
    EventOut,
    WebhookEndpointChange,
    WebhookEndpointCreatedOut,
    WebhookEndpointDeactivatedOut,
    WebhookEndpointIn,
    WebhookEndpointOut,
)
from api.permissions import Rule
from api.views import ApiViewSet, validated
from notifications.models import Event, WebhookEndpoint
from notifications.webhook_endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_deactivate,
    webhook_endpoint_update,
)


class WebhookEndpointFilter(FilterSet):
    is_active = BooleanFilter()

    class Meta:
        model = WebhookEndpoint
        fields = ["is_active"]


class WebhookEndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Where events are delivered (signed with HMAC-SHA256). The broker's, not a client's: client users
    cannot see them. Deactivating keeps the endpoint's history."""

    read_rule = Rule(Scope.READ, "notifications.view_webhookendpoint")
    write_rules = {
        "create": Rule(Scope.ADMIN, "notifications.add_webhookendpoint"),
        "partial_update": Rule(Scope.ADMIN, "notifications.change_webhookendpoint"),
        "deactivate": Rule(Scope.ADMIN, "notifications.change_webhookendpoint"),
    }
    serializer_class = WebhookEndpointOut
    filterset_class = WebhookEndpointFilter
    ordering_fields = ["name", "created_at"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return WebhookEndpoint.objects.all()

    @extend_schema(
        request=WebhookEndpointIn, responses={201: WebhookEndpointCreatedOut}, summary="Register an endpoint"
    )
    def create(self, request):
        endpoint = webhook_endpoint_create(actor=self.caller.actor, **validated(WebhookEndpointIn, request))
        return Response(WebhookEndpointCreatedOut(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=WebhookEndpointChange, responses=WebhookEndpointOut, summary="Change an endpoint")
    def partial_update(self, request, pk=None):
        endpoint = webhook_endpoint_update(
            endpoint=self.get_object(), actor=self.caller.actor, **validated(WebhookEndpointChange, request)
        )
        return Response(WebhookEndpointOut(endpoint).data)

    @extend_schema(
        request=None,
        responses=WebhookEndpointDeactivatedOut,
        summary="Stop sending to an endpoint, and cancel what is queued for it",
    )
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        done = webhook_endpoint_deactivate(endpoint=self.get_object(), actor=self.caller.actor)
        return Response(
            {**WebhookEndpointOut(done.endpoint).data, "messages_cancelled": done.messages_cancelled}
        )


class EventFilter(FilterSet):
    type = django_filters.CharFilter(max_length=60)
    client = IdFilter(field_name="client_id")
    subject_type = django_filters.CharFilter(max_length=60)
    subject_id = django_filters.CharFilter(max_length=64)
    occurred_after = TimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = TimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["type", "client", "subject_type", "subject_id"]


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """What happened (margin calls issued, forced sales filled…), newest first: the same events webhooks
    deliver, for systems that poll (``?occurred_after=``) or catch up. A client user sees their own."""

    read_rule = Rule(Scope.READ, "notifications.view_event", client_users=True)
    client_field = "client"
    serializer_class = EventOut
    filterset_class = EventFilter
    ordering_fields = ["occurred_at"]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        return self.scoped(Event.objects.all())
