from django.db import models


class Scope(models.TextChoices):
    """What an API key may do. Reading needs ``read``; every write names the one scope it needs."""

    READ = "read", "Read every resource"
    PRICES = "prices", "Push securities prices and FX rates"
    COLLATERAL = "collateral", "Record collateral deposits and withdrawals"
    LENDING = "lending", "Draw down and record repayments"
    ADMIN = "admin", "Manage clients, credit profiles, facilities, assets and webhook endpoints"
    RISK = "risk", "Run stress tests, add stress scenarios, create and change margin policies"
