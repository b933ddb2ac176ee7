from django.urls import include, path

app_name = "console"

urlpatterns: list = [
    # Stress tests and the daily report (their own views, over the oversight app).
    path("", include("console.stress.urls")),
]
