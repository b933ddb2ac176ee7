from django.apps import AppConfig


class FinancingConfig(AppConfig):
    name = "financing"
    verbose_name = "Financing"

    def ready(self) -> None:
        import financing.forced_sales  # noqa: F401  registers the kill-switch approval kind
