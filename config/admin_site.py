"""The staff admin site: Django's, opened only to staff who signed in with their second factor; its first page
also checks that the margin sweep is running (in case the periodic check itself has stopped with beat)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction

from accounts.second_factor import needs_second_factor
from accounts.users import user_password_changed_record
from financing.monitoring.watchdog import sweep_overdue_check


class StaffAdminSite(admin.AdminSite):
    site_header = "Margin financing — staff admin"
    site_title = "Margin financing"
    index_title = "Clients, collateral, facilities and risk"

    def has_permission(self, request) -> bool:
        """Staff with a verified second factor (the middleware sends the others to verify it first; this
        holds even without it)."""
        user = request.user
        verified = getattr(user, "is_verified", None)
        return super().has_permission(request) and (
            not needs_second_factor(user) or (verified is not None and verified())
        )

    def password_change(self, request, extra_context=None):
        """Django's page for changing one's own password, with the change audited."""
        with transaction.atomic():
            user = request.user
            before = user.password
            response = super().password_change(request, extra_context)
            if user.password != before:
                user_password_changed_record(user=user, actor=user)
        return response

    def index(self, request, extra_context=None):
        health = sweep_overdue_check()
        if health.overdue:
            messages.error(request, health.in_words())
        return super().index(request, extra_context)
