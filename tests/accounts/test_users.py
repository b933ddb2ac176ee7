"""Who may do what is audited: users, their roles and permissions, the roles' own permissions, passwords,
through the admin pages and the services behind them; and the role sync puts a tampered role back, audited."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts import roles, users
from accounts.audit import SYSTEM
from accounts.models import AuditEvent, User
from core.exceptions import PermissionRefused
from tests.accounts.factories import StaffFactory
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db


def permission(key: str) -> Permission:
    app_label, codename = key.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@pytest.fixture
def administrator(client):
    user = StaffFactory(role=roles.ADMINISTRATOR)
    login_as(client, user)
    return user


def user_form(user: User, **changes) -> dict:
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "",
        "groups": [group.pk for group in user.groups.all()],
        "user_permissions": [],
        "client": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_giving_a_role_a_permission_in_the_admin_is_audited_and_the_sync_takes_it_back(client, administrator):
    operations = Group.objects.get(name=roles.OPERATIONS)
    before = {p.pk for p in operations.permissions.all()}
    approve = permission("accounts.approve_credit_limit")
    response = client.post(
        reverse("admin:auth_group_change", args=[operations.pk]),
        {"name": operations.name, "permissions": [*before, approve.pk]},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="group.permissions_changed", actor=administrator)
    assert event.target_repr == roles.OPERATIONS
    assert event.after["added"] == ["accounts.approve_credit_limit"]
    assert event.after["removed"] == []
    roles.roles_sync()
    assert not Group.objects.get(name=roles.OPERATIONS).permissions.filter(pk=approve.pk).exists()
    undone = (
        AuditEvent.objects.filter(action="group.permissions_changed").order_by("-created_at", "-pk").first()
    )
    assert (undone.actor, undone.actor_label) == (None, "system")
    assert undone.after["removed"] == ["accounts.approve_credit_limit"]


def test_changing_a_users_roles_in_the_admin_is_audited(client, administrator):
    officer = StaffFactory(role=roles.CREDIT_OFFICER)
    risk = Group.objects.get(name=roles.RISK_OFFICER)
    response = client.post(
        reverse("admin:accounts_user_change", args=[officer.pk]),
        user_form(
            officer, groups=[risk.pk], user_permissions=[permission("financing.approve_forcedsale").pk]
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="user.roles_changed")
    assert event.actor == administrator
    assert event.before == {"groups": [roles.CREDIT_OFFICER], "permissions": []}
    assert event.after == {"groups": [roles.RISK_OFFICER], "permissions": ["financing.approve_forcedsale"]}
    assert not AuditEvent.objects.filter(action="user.updated").exists()  # nothing else changed


def test_changing_a_users_flags_in_the_admin_is_audited(client, administrator):
    officer = StaffFactory(role=roles.CREDIT_OFFICER)
    response = client.post(
        reverse("admin:accounts_user_change", args=[officer.pk]),
        user_form(officer, is_active="", email="x@y.example"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="user.updated")
    assert event.before == {"email": officer.email, "is_active": True}
    assert event.after == {"email": "x@y.example", "is_active": False}
    officer.refresh_from_db()
    assert not officer.is_active


def test_creating_a_user_in_the_admin_is_audited_without_the_password(client, administrator):
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "newcomer",
            "usable_password": "true",
            "password1": "Harbour-view-77",
            "password2": "Harbour-view-77",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(username="newcomer")
    assert user.check_password("Harbour-view-77")
    event = AuditEvent.objects.get(action="user.created")
    assert (event.actor, event.target_id) == (administrator, str(user.pk))
    assert event.after["password"] == "set"
    assert "Harbour-view-77" not in str(event.after)


def test_setting_a_password_in_the_admin_is_audited(client, administrator):
    officer = StaffFactory(role=roles.CREDIT_OFFICER)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[officer.pk]),
        {"usable_password": "true", "password1": "Kowloon-bay-58", "password2": "Kowloon-bay-58"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="user.password_changed")
    assert (event.actor, event.target_id, event.after) == (
        administrator,
        str(officer.pk),
        {"password": "set"},
    )


def test_changing_ones_own_password_is_audited(client, administrator):
    response = client.post(
        reverse("admin:password_change"),
        {"old_password": "pass", "new_password1": "Tsim-sha-tsui-91", "new_password2": "Tsim-sha-tsui-91"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="user.password_changed")
    assert (event.actor, event.target_id) == (administrator, str(administrator.pk))


def test_creating_and_deleting_a_role_in_the_admin_is_audited(client, administrator):
    response = client.post(
        reverse("admin:auth_group_add"),
        {"name": "Auditors", "permissions": [permission("accounts.view_auditevent").pk]},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    group = Group.objects.get(name="Auditors")
    assert list(
        AuditEvent.objects.filter(target_id=str(group.pk), action__startswith="group.")
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    ) == ["group.created", "group.permissions_changed"]
    response = client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert response.status_code == 302
    deleted = AuditEvent.objects.get(action="group.deleted")
    assert deleted.before == {"name": "Auditors", "permissions": ["accounts.view_auditevent"], "users": []}


def test_users_are_deactivated_not_deleted(client, administrator):
    officer = StaffFactory(role=roles.CREDIT_OFFICER)
    assert client.get(reverse("admin:accounts_user_delete", args=[officer.pk])).status_code == 403


@pytest.mark.parametrize(
    "role", [roles.CREDIT_OFFICER, roles.RISK_OFFICER, roles.OPERATIONS, roles.COMPLIANCE]
)
def test_only_administrators_change_users_and_roles(role):
    staff = StaffFactory(role=role)
    officer = StaffFactory(role=roles.CREDIT_OFFICER)
    operations = Group.objects.get(name=roles.OPERATIONS)
    with writes_nothing():
        with pytest.raises(PermissionRefused):
            users.user_update(user=officer, actor=staff, is_superuser=True)
        with pytest.raises(PermissionRefused):
            users.user_roles_set(
                user=staff, actor=staff, groups=[Group.objects.get(name=roles.ADMINISTRATOR)]
            )
        with pytest.raises(PermissionRefused):
            users.group_permissions_set(group=operations, actor=staff, permissions=Permission.objects.all())
        with pytest.raises(PermissionRefused):
            users.user_create(actor=staff, username="shadow", password="x")


def test_the_role_sync_changes_nothing_and_records_nothing_when_the_roles_are_in_line():
    roles.roles_sync()
    with writes_nothing():
        roles.roles_sync()


def test_a_missing_role_is_created_by_the_sync_audited():
    Group.objects.filter(name=roles.COMPLIANCE).delete()
    roles.roles_sync()
    group = Group.objects.get(name=roles.COMPLIANCE)
    assert AuditEvent.objects.filter(
        action="group.created", target_id=str(group.pk), actor_label=SYSTEM.label
    ).exists()
