"""The staff admin site: Django's, opened only to staff who signed in with their second factor."""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from accounts.second_factor import needs_second_factor
from accounts.users import user_password_changed_record


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
