from django.apps import AppConfig


class FinancingConfig(AppConfig):
    name = "financing"
    verbose_name = "Financing"

    def ready(self) -> None:
        # Each registers its approval kind: the kill switch, and the sign-off of standing top-ups.
        import financing.liquidation.kill_switch
        import financing.top_ups.instructions  # noqa: F401
