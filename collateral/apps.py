from django.apps import AppConfig


class CollateralConfig(AppConfig):
    name = "collateral"
    verbose_name = "Collateral"

    def ready(self) -> None:
        import collateral.services  # noqa: F401  registers the haircut approval kind
