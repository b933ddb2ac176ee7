from django.apps import AppConfig


class CollateralConfig(AppConfig):
    name = "collateral"
    verbose_name = "Collateral"
