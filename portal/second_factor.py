"""A client's own TOTP second factor: enrolling is their choice; once enrolled it is asked at sign-in (every
portal page waits for it) and again, as a fresh code, before any action that moves money. Built on the same
services as the staff's (``accounts.second_factor``): every enrolment, verification and failure audited, wrong
codes throttled by django-otp."""

from __future__ import annotations

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts.second_factor import (
    is_enrolled,
    second_factor_verify,
)
from core.exceptions import DomainError


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from your authenticator app"),
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def needs_verifying(request: HttpRequest) -> bool:
    user = request.user
    return not user.is_verified() and is_enrolled(user)  # verified: no need to ask the database


def check_code(request: HttpRequest, code: str) -> None:
    """A fresh code before an action that moves money (raises ``ValidationError`` with the refusal)."""
    try:
        second_factor_verify(request=request, user=request.user, code=code or "")
    except DomainError as error:
        raise ValidationError(str(error)) from None


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or reverse("portal:home")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("portal:home")


def qr_svg(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=6)
    return mark_safe(image.to_string(encoding="unicode"))  # drawn here from our own text


@never_cache
@sensitive_post_parameters("code")
def verify(request: HttpRequest) -> HttpResponse:
    """Asked after sign-in of a client user who has enrolled."""
    if not request.user.is_authenticated or request.user.client_id is None:
        return redirect_to_login(request.get_full_path())
    if not needs_verifying(request):
        return redirect(_next(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            second_factor_verify(request=request, user=request.user, code=form.cleaned_data["code"])
        except DomainError as error:
            form.add_error("code", str(error))
        else:
            return redirect(_next(request))
    return render(request, "portal/second_factor/verify.html", {"form": form, "next": _next(request)})
