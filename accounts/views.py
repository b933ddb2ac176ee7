"""The pages staff pass through after their password: enrol an authenticator (its secret as text and as a QR
code drawn here, never by an outside service), then a code from it at each login; new recovery codes."""

from __future__ import annotations

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts.second_factor import (
    enrolment_device,
    is_enrolled,
    needs_second_factor,
    recovery_codes_renew,
    second_factor_enrol,
    second_factor_verify,
    secret_of,
)
from core.exceptions import DomainError


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=20,
        label="Code",
        help_text="the 6 digits your authenticator shows now, or one of your recovery codes",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )


def _next_url(request) -> str:
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return reverse("admin:index")


def _with_next(name: str, request) -> str:
    return f"{reverse(name)}?{request.GET.urlencode()}" if request.GET else reverse(name)


def _page(request, template: str, title: str, **context):
    return render(
        request,
        template,
        {**admin.site.each_context(request), "title": title, "next": _next_url(request), **context},
    )


def _qr_svg(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=6)
    return mark_safe(image.to_string(encoding="unicode"))  # drawn here, from our own text


@never_cache
@sensitive_post_parameters("code")
@login_required(login_url="admin:login")
def second_factor_verify_view(request):
    user = request.user
    if not needs_second_factor(user) or user.is_verified():
        return redirect(_next_url(request))
    if not is_enrolled(user):
        return redirect(_with_next("accounts:second_factor_enrol", request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            second_factor_verify(request=request, user=user, code=form.cleaned_data["code"])
        except DomainError as error:
            form.add_error("code", str(error))
        else:
            return redirect(_next_url(request))
    return _page(request, "accounts/second_factor_verify.html", "Second factor", form=form)


@never_cache
@sensitive_post_parameters("code")
@login_required(login_url="admin:login")
def second_factor_enrol_view(request):
    user = request.user
    if not needs_second_factor(user) or user.is_verified():
        return redirect(_next_url(request))
    if is_enrolled(user):
        return redirect(_with_next("accounts:second_factor_verify", request))
    device = enrolment_device(user=user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = second_factor_enrol(request=request, user=user, code=form.cleaned_data["code"])
        except DomainError as error:
            form.add_error("code", str(error))
        else:
            return _page(request, "accounts/recovery_codes.html", "Your recovery codes", codes=codes)
    return _page(
        request,
        "accounts/second_factor_enrol.html",
        "Set up your second factor",
        form=form,
        secret=secret_of(device),
        qr_code=_qr_svg(device.config_url),
    )


@never_cache
@login_required(login_url="admin:login")
def recovery_codes_view(request):
    """New recovery codes, for a member of staff who has signed in with their second factor."""
    user = request.user
    if not needs_second_factor(user) or not user.is_verified():
        return redirect(_with_next("accounts:second_factor_verify", request))
    if request.method == "POST":
        codes = recovery_codes_renew(user=user)
        return _page(request, "accounts/recovery_codes.html", "Your new recovery codes", codes=codes)
    return _page(request, "accounts/recovery_codes_renew.html", "Recovery codes")
