"""Staff roles are groups with real permissions. Each role is a list of patterns over
``app_label.codename``, so a model added later gets its permissions in the right roles without a new
migration. ``roles_sync`` is idempotent and runs after every ``migrate``."""

from __future__ import annotations

from fnmatch import fnmatch

from django.contrib.auth.models import Group, Permission
from django.db import connections, transaction

from accounts.audit import SYSTEM
from accounts.models import User
from accounts.users import group_create, group_permissions_set

ROLE_APPS = (
    "accounts",
    "notifications",
    "ledger",
    "collateral",
    "financing",
    "oversight",
    "api",
    "django_celery_beat",
    "axes",
)

CREDIT_OFFICER = "Credit officer"
RISK_OFFICER = "Risk officer"
OPERATIONS = "Operations"
COMPLIANCE = "Compliance"
ADMINISTRATOR = "Administrator"

READ_EVERYTHING = ["*.view_*"]

ROLES: dict[str, list[str]] = {
    CREDIT_OFFICER: [
        *READ_EVERYTHING,
        "accounts.add_client",
        "accounts.change_client",
        "accounts.add_creditprofile",
        "accounts.change_creditprofile",
        "accounts.approve_credit_limit",
        "accounts.approve_client_assessment",  # KYC status and professional-investor evidence (four-eyes)
        "financing.add_facility",
        "financing.change_facility",
        "financing.add_drawdown",
        "financing.add_repayment",
        # Sign-off of standing top-ups only: forced sales are approved and resumed by risk officers.
        "financing.approve_standing_top_up",
        "financing.add_standingtopupinstruction",
        "financing.change_standingtopupinstruction",  # revoke one
    ],
    RISK_OFFICER: [
        *READ_EVERYTHING,
        "collateral.add_asset",
        "collateral.change_asset",
        "collateral.approve_*",
        "collateral.add_price*",
        "collateral.add_fxrate",
        "financing.change_marginpolicy",
        "financing.add_marginpolicy",
        "financing.approve_margin_policy",  # a change of thresholds (four-eyes)
        "financing.*margincall*",
        "financing.*forcedsale*",
        "financing.*killswitch*",
        "financing.approve_standing_top_up",
        "financing.approve_schedule_change",  # disabling, deleting or slowing a margin-critical schedule
        "financing.change_standingtopupinstruction",  # revoke one
        "django_celery_beat.*",
        "oversight.run_stress_test",
        "oversight.add_stressscenario",
        "oversight.change_stressscenario",
        "oversight.add_dailyreport",
    ],
    OPERATIONS: [
        *READ_EVERYTHING,
        "collateral.add_price*",
        "collateral.add_fxrate",
        "collateral.add_collateralmovement",
        "collateral.add_custody*",
        "financing.add_repayment",
        "financing.add_baserate",  # HIBOR fixings: market data, like prices
        "financing.record_fill",
        "notifications.change_outboxmessage",
        "notifications.*_webhookendpoint",
    ],
    COMPLIANCE: READ_EVERYTHING,
    # Users, roles, API keys and login lockouts; no business decision (they would otherwise approve limits,
    # sales and the kill switch as a second pair of eyes nobody chose).
    ADMINISTRATOR: [
        *READ_EVERYTHING,
        "auth.*",
        "accounts.add_user",
        "accounts.change_user",
        "api.add_apikey",
        "api.change_apikey",  # revoke one
        "axes.delete_accessattempt",  # lift a lockout
    ],
}


def _permission_keys() -> dict[str, Permission]:
    apps = (*ROLE_APPS, "auth")
    return {
        f"{perm.content_type.app_label}.{perm.codename}": perm
        for perm in Permission.objects.select_related("content_type").filter(content_type__app_label__in=apps)
    }


def role_permissions(role: str, available: dict[str, Permission] | None = None) -> list[Permission]:
    available = available if available is not None else _permission_keys()
    patterns = ROLES[role]
    chosen = []
    for key, perm in available.items():
        app_label = key.split(".", 1)[0]
        for pattern in patterns:
            if app_label == "auth" and not pattern.startswith("auth."):
                continue  # user and group management belongs to administrators only
            if fnmatch(key, pattern):
                chosen.append(perm)
                break
    return chosen


@transaction.atomic
def roles_sync(*, bootstrap: bool = False) -> None:
    """Bring each role's group in line with its patterns, through the audited services: a permission an
    administrator added to a role by hand is taken away again here, and the audit trail says so.
    ``bootstrap``: the first migration of an empty database, where the roles are reference data like the
    migrations' own rows, written without audit events (nobody has signed in yet to have changed them)."""
    available = _permission_keys()
    for role in ROLES:
        if bootstrap:
            group, _ = Group.objects.get_or_create(name=role)
            group.permissions.set(role_permissions(role, available))
            continue
        group = Group.objects.filter(name=role).first() or group_create(actor=SYSTEM, name=role)
        group_permissions_set(group=group, actor=SYSTEM, permissions=role_permissions(role, available))


def roles_sync_after_migrate(sender, using="default", **kwargs) -> None:
    tables = connections[using].introspection.table_names()
    if User._meta.db_table not in tables or not Permission.objects.using(using).exists():
        return  # accounts migrated back to zero, or nothing to sync yet
    roles_sync(bootstrap=not User.objects.using(using).exists())
