from django.urls import include, path

from console import views

app_name = "console"

urlpatterns: list = [
    path("", views.overview, name="home"),
    path("overview/live/", views.overview_live, name="overview_live"),
    path("at-risk/", views.at_risk, name="at_risk"),
    path("at-risk/rows/", views.at_risk_rows, name="at_risk_rows"),
    # Stress tests and the daily report (their own views, over the oversight app).
    path("", include("console.stress.urls")),
]
