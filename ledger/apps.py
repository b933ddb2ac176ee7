from django.apps import AppConfig
from django.db.models.signals import post_migrate


def app_role_grant_after_migrate(sender, using="default", **kwargs) -> None:
    """After every ``migrate`` (run as the tables' owner), give the application's role what it needs and no
    more, when one is named (``DATABASE_APP_ROLE``)."""
    from django.conf import settings
    from django.db import connections

    from core.db import app_role_grant

    if settings.DATABASE_APP_ROLE:
        app_role_grant(connections[using], settings.DATABASE_APP_ROLE)


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        # Reference set-up of the database, like the roles in accounts: not a domain side effect.
        post_migrate.connect(app_role_grant_after_migrate, sender=self, dispatch_uid="ledger.app_role_grant")
