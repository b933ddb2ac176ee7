"""Who may use the portal: signed-in client users, each seeing only their own client's records."""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from portal.second_factor import needs_verifying


def redirect_to_second_factor(request):
    return redirect(f"{reverse('portal:verify')}?{urlencode({'next': request.get_full_path()})}")


def client_required(view):
    """Client users only: someone not signed in goes to sign-in, staff to their own pages, anyone else is
    told they have no access (403)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if getattr(user, "client_id", None) is None:
            if user.is_staff:
                return redirect(settings.WEB_STAFF_HOME)
            return render(request, "web/no_access.html", status=403)
        if needs_verifying(request):  # enrolled: the code is asked at sign-in, before any page
            return redirect_to_second_factor(request)
        return view(request, *args, **kwargs)

    return wrapped
