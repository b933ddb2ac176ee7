from django.urls import path

from console.stress import views

urlpatterns: list = [
    path("stress/", views.stress_library, name="stress_library"),
    path("stress/scenarios/", views.stress_scenario_add, name="stress_scenario_add"),
    path("stress/scenarios/<int:pk>/run/", views.stress_run_create, name="stress_run_create"),
    path("stress/runs/<int:pk>/", views.stress_run_detail, name="stress_run"),
    path("stress/runs/<int:pk>/export.<str:format>", views.stress_run_export, name="stress_run_export"),
    path("forced-sales/<int:pk>/explained/", views.forced_sale_explained, name="forced_sale_explained"),
    path(
        "forced-sales/<int:pk>/explained.pdf",
        views.forced_sale_explained_pdf,
        name="forced_sale_explained_pdf",
    ),
    path("reports/", views.daily_reports, name="daily_reports"),
    path("reports/make/", views.daily_report_create, name="daily_report_create"),
    path("reports/<str:day>/", views.daily_report_detail, name="daily_report"),
    path("reports/<str:day>/export.<str:format>", views.daily_report_export, name="daily_report_export"),
]
