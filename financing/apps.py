from django.apps import AppConfig


class FinancingConfig(AppConfig):
    name = "financing"
    verbose_name = "Financing"

    def ready(self) -> None:
        # Each registers its approval kind: the kill switch, the sign-off of standing top-ups, changes to
        # margin-critical schedules, and extensions of a margin call's deadline.
        import financing.liquidation.kill_switch
        import financing.margin_calls.deadline
        import financing.monitoring.schedules
        import financing.top_ups.instructions  # noqa: F401
