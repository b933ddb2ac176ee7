from django.urls import include, path

from console import views

app_name = "console"

urlpatterns: list = [
    path("", views.overview, name="home"),
    path("overview/live/", views.overview_live, name="overview_live"),
    path("at-risk/", views.at_risk, name="at_risk"),
    path("at-risk/rows/", views.at_risk_rows, name="at_risk_rows"),
    path("facilities/<int:pk>/", views.facility, name="facility"),
    path("facilities/<int:pk>/top-up/", views.top_up_run, name="top_up_run"),
    path("margin-calls/<int:pk>/extend/", views.margin_call_extend, name="margin_call_extend"),
    path("forced-sales/<int:pk>/approve/", views.sale_approve, name="sale_approve"),
    path("forced-sales/<int:pk>/pause/", views.sale_pause, name="sale_pause"),
    path("forced-sales/<int:pk>/resume/", views.sale_resume, name="sale_resume"),
    path("concentration/", views.concentration, name="concentration"),
    path("queues/", views.queues, name="queues"),
    path("queues/live/", views.queues_live, name="queues_live"),
    path(
        "approvals/<int:pk>/approve/", views.approval_decide, {"decision": "approve"}, name="approval_approve"
    ),
    path("approvals/<int:pk>/reject/", views.approval_decide, {"decision": "reject"}, name="approval_reject"),
    path("forced-sales/", views.forced_sales, name="forced_sales"),
    path("forced-sales/live/", views.forced_sales_live, name="forced_sales_live"),
    path("kill-switch/engage/", views.kill_switch_on, name="kill_switch_engage"),
    path("kill-switch/lift/", views.kill_switch_lift, name="kill_switch_lift"),
    path("prices/", views.prices, name="prices"),
    path("prices/live/", views.prices_live, name="prices_live"),
    path(
        "prices/held/<int:pk>/confirm/",
        views.held_price_decide,
        {"decision": "confirm"},
        name="price_confirm",
    ),
    path(
        "prices/held/<int:pk>/reject/", views.held_price_decide, {"decision": "reject"}, name="price_reject"
    ),
    path(
        "fx-rates/held/<int:pk>/confirm/",
        views.held_fx_rate_decide,
        {"decision": "confirm"},
        name="fx_rate_confirm",
    ),
    path(
        "fx-rates/held/<int:pk>/reject/",
        views.held_fx_rate_decide,
        {"decision": "reject"},
        name="fx_rate_reject",
    ),
    # Stress tests and the daily report (their own views, over the oversight app).
    path("", include("console.stress.urls")),
]
