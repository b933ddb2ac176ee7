from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q

from core.admin import ReadOnlyAdminMixin, ServiceAdminMixin, run_for_each
from notifications.enums import DeliveryStatus
from notifications.models import Event, OutboxMessage, WebhookEndpoint
from notifications.services import outbox_retry_failed
from notifications.webhook_endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_deactivate,
    webhook_endpoint_update,
)


class OutboxMessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OutboxMessage
    fields = [
        "channel",
        "endpoint",
        "recipient",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
    ]
    readonly_fields = fields
    extra = 0


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "type", "summary", "client", "undelivered"]
    list_filter = ["type", "occurred_at"]
    search_fields = ["summary", "type", "client__reference", "client__name", "subject_id"]
    date_hierarchy = "occurred_at"
    inlines = [OutboxMessageInline]
    readonly_fields = [
        "id",
        "type",
        "occurred_at",
        "client",
        "subject_type",
        "subject_id",
        "summary",
        "payload",
    ]

    def get_queryset(self, request):
        pending = Count("messages", filter=~Q(messages__status=DeliveryStatus.DELIVERED))
        return super().get_queryset(request).select_related("client").annotate(undelivered_count=pending)

    @admin.display(description="undelivered", ordering="undelivered_count")
    def undelivered(self, event) -> int:
        return event.undelivered_count


class UndeliveredFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [
            ("undelivered", "Not delivered yet (pending or failed)"),
            ("failed", "Failed: needs a person"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "undelivered":
            return queryset.exclude(status=DeliveryStatus.DELIVERED)
        if self.value() == "failed":
            return queryset.filter(status=DeliveryStatus.FAILED)
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "event",
        "channel",
        "destination",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = [UndeliveredFilter, "status", "channel"]
    search_fields = ["recipient", "endpoint__name", "event__type", "last_error"]
    list_select_related = ["event", "endpoint"]
    actions = ["retry"]

    @admin.display(description="to")
    def destination(self, message) -> str:
        return str(message.endpoint) if message.endpoint_id else message.recipient

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("notifications.change_outboxmessage")

    @admin.action(description="Retry the selected messages now", permissions=["retry"])
    def retry(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda message: outbox_retry_failed(message=message),
            "message(s) queued again",
        )

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("notifications.view_outboxmessage")


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "event_types"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Endpoints are registered and changed through the audited services; the signing secret is generated
    and shown once, right after registration."""

    form = WebhookEndpointForm
    list_display = ["name", "url", "event_types", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    actions = ["deactivate"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changed = {name: data[name] for name in form.changed_data}
            webhook_endpoint_update(endpoint=obj, actor=request.user, **changed)
            return
        endpoint = webhook_endpoint_create(
            name=data["name"], url=data["url"], event_types=data["event_types"], actor=request.user
        )
        obj.pk = endpoint.pk
        self.message_user(
            request,
            f"Signing secret for {endpoint.name} (shown once; give it to the receiving system): {endpoint.secret}",
            level=messages.WARNING,
        )

    @admin.action(description="Deactivate the selected endpoints", permissions=["change"])
    def deactivate(self, request, queryset):
        def deactivate(endpoint):
            done = webhook_endpoint_deactivate(endpoint=endpoint, actor=request.user)
            self.message_user(
                request,
                f"{endpoint.name}: deactivated; {done.messages_cancelled} queued message(s) cancelled.",
                level=messages.SUCCESS,
            )

        run_for_each(self, request, queryset, deactivate, "endpoint(s) deactivated")
