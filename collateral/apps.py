from django.apps import AppConfig
from django.conf import settings


class CollateralConfig(AppConfig):
    name = "collateral"
    verbose_name = "Collateral"

    def ready(self) -> None:
        import collateral.services  # noqa: F401  registers the haircut approval kind

        if settings.VENUES_CHECKED_AT_START:  # production: no start without venues to price and sell at
            from exchanges.venues import venues_check

            venues_check()
