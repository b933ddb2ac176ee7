"""``/api/v1/`` resources, ``/api/schema/`` (OpenAPI 3) and ``/api/docs/`` (Swagger UI, served offline); the
schema and the docs to authenticated callers only."""

from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from api.accounts.views import ClientViewSet, CreditProfileViewSet
from api.collateral.views import (
    AssetViewSet,
    CustodyHoldingViewSet,
    CustodyMovementViewSet,
    FxRateViewSet,
    PriceViewSet,
)
from api.financing.policies import MarginPolicyViewSet
from api.financing.views import (
    AutomaticTopUpViewSet,
    CollateralMovementViewSet,
    DrawdownViewSet,
    FacilityViewSet,
    ForcedSaleViewSet,
    MarginCallViewSet,
    RepaymentViewSet,
    StandingTopUpInstructionViewSet,
)
from api.notifications.views import EventViewSet, WebhookEndpointViewSet
from api.oversight.views import DailyReportViewSet, StressScenarioViewSet, StressTestViewSet
from api.views import WhoAmIView, not_found

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("clients", ClientViewSet, basename="client")
router.register("credit-profiles", CreditProfileViewSet, basename="credit-profile")
router.register("assets", AssetViewSet, basename="asset")
router.register("prices", PriceViewSet, basename="price")
router.register("fx-rates", FxRateViewSet, basename="fx-rate")
router.register("collateral-movements", CollateralMovementViewSet, basename="collateral-movement")
router.register("custody-movements", CustodyMovementViewSet, basename="custody-movement")
router.register("custody-holdings", CustodyHoldingViewSet, basename="custody-holding")
router.register("margin-policies", MarginPolicyViewSet, basename="margin-policy")
router.register("facilities", FacilityViewSet, basename="facility")
router.register("drawdowns", DrawdownViewSet, basename="drawdown")
router.register("repayments", RepaymentViewSet, basename="repayment")
router.register("margin-calls", MarginCallViewSet, basename="margin-call")
router.register("forced-sales", ForcedSaleViewSet, basename="forced-sale")
router.register(
    "standing-top-up-instructions", StandingTopUpInstructionViewSet, basename="standing-top-up-instruction"
)
router.register("automatic-top-ups", AutomaticTopUpViewSet, basename="automatic-top-up")
router.register("webhook-endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("events", EventViewSet, basename="event")
router.register("stress-scenarios", StressScenarioViewSet, basename="stress-scenario")
router.register("stress-tests", StressTestViewSet, basename="stress-test")
router.register("daily-reports", DailyReportViewSet, basename="daily-report")

urlpatterns = [
    path("v1/whoami/", WhoAmIView.as_view(), name="whoami"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        login_required(
            SpectacularSwaggerSplitView.as_view(url_name="schema"), login_url="rest_framework:login"
        ),
        name="docs",
    ),
    path("auth/", include("rest_framework.urls")),
    re_path(r"^[\s\S]*$", not_found),  # any other path, newlines and all
]
