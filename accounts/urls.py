"""The second-factor pages, under /admin/second-factor/."""

from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.second_factor_verify_view, name="second_factor_verify"),
    path("enrol/", views.second_factor_enrol_view, name="second_factor_enrol"),
    path("recovery-codes/", views.recovery_codes_view, name="recovery_codes"),
]
