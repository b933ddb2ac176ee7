"""API keys in the staff admin: create (the key is shown once, on the page that follows), see scopes and
last use, revoke. Keys are never edited or deleted: revoke one and create another."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse

from api.enums import Scope
from api.models import ApiKey
from api.services import api_key_create, api_key_revoke
from core.admin import ServiceAdminMixin, run_for_each


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "throttle_rate"]


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scope_list", "created_at", "created_by", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = [
        "prefix",
        "scopes",
        "throttle_rate",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    ]

    @admin.display(description="scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "scopes", "throttle_rate"]
        return ["name", *self.readonly_fields]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        api_key, raw_key = api_key_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            throttle_rate=form.cleaned_data["throttle_rate"],
            actor=request.user,
        )
        obj.pk = api_key.pk
        request._new_api_key = raw_key  # shown once by response_add, never stored

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "api_key": ApiKey.objects.get(pk=obj.pk),
            "raw_key": request._new_api_key,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "api/apikey_created.html", context)

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda api_key: api_key_revoke(api_key=api_key, actor=request.user),
            "revoked",
        )
