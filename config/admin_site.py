"""The staff admin site: Django's, opened only to staff who signed in with their second factor."""

from __future__ import annotations

from django.contrib import admin

from accounts.second_factor import needs_second_factor


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
