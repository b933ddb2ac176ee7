from django.apps import AppConfig


class FinancingConfig(AppConfig):
    name = "financing"
    verbose_name = "Financing"

    def ready(self) -> None:
        import financing.top_ups  # noqa: F401  registers the standing top-up approval kind
