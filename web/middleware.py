"""The content security policy, with one relaxation for the staff admin."""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's policy everywhere; under ``WEB_INLINE_STYLES_UNDER`` (the admin, whose pages colour
    statuses in style attributes) inline styles are allowed too. Scripts stay this site's own everywhere."""

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if request.path_info.startswith(tuple(settings.WEB_INLINE_STYLES_UNDER)):
            parts.update = {**(parts.update or {}), "style-src": [UNSAFE_INLINE]}
        return parts
