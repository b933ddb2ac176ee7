from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("alerts/", views.banner, name="banner"),
    path("facilities/<int:facility_id>/", views.overview, name="overview"),
    path("facilities/<int:facility_id>/figures/", views.overview_figures, name="overview_figures"),
    path("facilities/<int:facility_id>/what-if/", views.what_if, name="what_if"),
]
urlpatterns += [
    path("facilities/<int:facility_id>/positions/", views.positions, name="positions"),
    path("facilities/<int:facility_id>/history/", views.history, name="history"),
    path("facilities/<int:facility_id>/history.csv", views.history_csv, name="history_csv"),
]
urlpatterns += [
    path("facilities/<int:facility_id>/actions/", views.actions_list, name="actions"),
    path("facilities/<int:facility_id>/actions/<slug:slug>/", views.action, name="action"),
]
urlpatterns += [
    path("facilities/<int:facility_id>/statements/", views.statements_list, name="statements"),
    path(
        "facilities/<int:facility_id>/statements/<int:year>-<int:month>/", views.statement, name="statement"
    ),
    path(
        "facilities/<int:facility_id>/statements/<int:year>-<int:month>.pdf",
        views.statement_pdf,
        name="statement_pdf",
    ),
]
urlpatterns += [
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/read-all/", views.notifications_read_all, name="notifications_read_all"),
    path("notifications/<uuid:event_id>/", views.notification_mark, name="notification_mark"),
]

from portal import password  # noqa: E402

urlpatterns += [
    path("password-reset/", password.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", password.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        password.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/", password.PasswordResetCompleteView.as_view(), name="password_reset_complete"
    ),
]

from portal import second_factor  # noqa: E402

urlpatterns += [
    path("second-factor/", second_factor.verify, name="verify"),
    path("security/", views.security, name="security"),
]
