"""Who may see the console: signed-in staff with a role (each role reads everything; compliance only reads).
What each may do is checked again by the service behind every action."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

READ_PERMISSION = "financing.view_marginstate"


def may_read_console(user) -> bool:
    return user.is_authenticated and user.is_active and user.is_staff and user.has_perm(READ_PERMISSION)


def staff_required(view):
    """Sign-in first (a redirect), then 403 for anyone who is not staff with a role."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not may_read_console(request.user):
            raise PermissionDenied("The risk console is for staff.")
        return view(request, *args, **kwargs)

    return wrapped
