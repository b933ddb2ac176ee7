from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "People and approvals"

    def ready(self) -> None:
        # Staff roles are groups whose permissions follow the models. Django creates permissions in a
        # post_migrate hook, so the roles are brought in line in one too, right after. This is the
        # one signal in the project: it bootstraps reference data, it is not a domain side effect.
        import accounts.services  # noqa: F401  registers the credit-limit approval kind
        from accounts.roles import roles_sync_after_migrate

        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="accounts.roles_sync")
