"""Who may do what through the API: an API key by its scopes, staff by their role's permissions, a client
user only on their own client's records (docs/api.md, "Who may do what")."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import exceptions, permissions

from api.authentication import caller_of


@dataclass(frozen=True)
class Rule:
    scope: str  # the API-key scope
    permission: str  # the Django permission a member of staff needs
    client_users: bool = False  # whether a client user may do it (on their own records)


class CallerAccess(permissions.BasePermission):
    """Checks the view's rule for the action: ``view.read_rule`` for safe methods, else
    ``view.write_rules[view.action]``."""

    def has_permission(self, request, view) -> bool:
        caller = caller_of(request)
        if caller is None:
            return False  # DRF turns this into 401 when no credentials were sent
        if request.method in permissions.SAFE_METHODS:
            rule = view.read_rule
        else:
            rule = view.write_rules.get(getattr(view, "action", None))
            if rule is None:
                raise exceptions.MethodNotAllowed(request.method)
        if caller.api_key is not None:
            if not caller.api_key.has_scope(rule.scope):
                raise exceptions.PermissionDenied(
                    f"The API key {caller.api_key.name} does not have the '{rule.scope}' scope this needs "
                    f"(it has: {', '.join(caller.api_key.scopes)}).",
                    code="scope_missing",
                )
            return True
        user = caller.user
        if user.is_superuser:
            return True
        if caller.is_client_user:
            if not rule.client_users:
                raise exceptions.PermissionDenied(
                    "Client users may not do this through the API.", code="not_for_client_users"
                )
            return True
        if user.is_staff:
            if not user.has_perm(rule.permission):
                raise exceptions.PermissionDenied(
                    f"{user.get_username()} lacks the permission {rule.permission}.", code="permission_denied"
                )
            return True
        raise exceptions.PermissionDenied(
            "This login is neither staff nor a client user.", code="permission_denied"
        )
