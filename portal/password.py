"""Password reset by e-mail for client users: Django's views and tokens, in the portal's layout. Staff reset
theirs through an administrator (their sign-in has a second factor that a mailed link must not bypass)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.db import transaction
from django.urls import reverse_lazy

from accounts.audit import audit_event_record


class ClientPasswordResetForm(PasswordResetForm):
    def get_users(self, email):
        return (user for user in super().get_users(email) if user.client_id is not None and not user.is_staff)


class PasswordResetView(auth_views.PasswordResetView):
    form_class = ClientPasswordResetForm
    template_name = "portal/password/reset.html"
    email_template_name = "portal/password/reset_email.txt"
    subject_template_name = "portal/password/reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/password/reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/password/reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            audit_event_record(actor=form.user, action="user.password_reset", target=form.user, after={})
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/password/reset_complete.html"
