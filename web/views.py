"""The shared pages: ``/`` sends each person to their own pages; sign-in and sign-out."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.views.decorators.http import require_safe


def home_url_for(user) -> str | None:
    """Where a signed-in person starts: a client user their portal, staff their console; None for neither.

    The targets are settings (``WEB_CLIENT_HOME``, ``WEB_STAFF_HOME``: a URL name or a path), so the portal
    and the console each change one line when they arrive."""
    if getattr(user, "client_id", None) is not None:
        return resolve_url(settings.WEB_CLIENT_HOME)
    if user.is_staff:
        return resolve_url(settings.WEB_STAFF_HOME)
    return None


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return auth_views.redirect_to_login(request.get_full_path())
    target = home_url_for(request.user)
    if target is None:
        return render(request, "web/no_access.html", status=403)
    return redirect(target)


class SignInView(auth_views.LoginView):
    """Django's sign-in (its form, its throttle-free checks), in the project's layout and languages."""

    template_name = "web/sign_in.html"
    redirect_authenticated_user = True


class SignOutView(auth_views.LogoutView):
    """POST only (Django's rule since 5.0), so a link or an image on another site cannot sign anyone out."""
