import pytest
from django.contrib.auth.models import Group

from accounts import roles
from tests.accounts.factories import StaffFactory

pytestmark = pytest.mark.django_db


def test_every_role_exists_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)


def test_compliance_is_read_only():
    codenames = set(Group.objects.get(name=roles.COMPLIANCE).permissions.values_list("codename", flat=True))
    assert codenames
    assert all(codename.startswith("view_") for codename in codenames)
    assert "view_auditevent" in codenames


def test_credit_officers_request_and_approve_limits_but_cannot_manage_users():
    officer = StaffFactory(role=roles.CREDIT_OFFICER)
    assert officer.has_perm("accounts.change_creditprofile")
    assert officer.has_perm("accounts.approve_credit_limit")
    assert not officer.has_perm("accounts.add_user")
    assert not officer.has_perm("auth.change_group")


def test_operations_cannot_approve_limits():
    operations = StaffFactory(role=roles.OPERATIONS)
    assert not operations.has_perm("accounts.approve_credit_limit")
    assert operations.has_perm("accounts.view_client")


def test_administrators_manage_users_and_groups():
    administrator = StaffFactory(role=roles.ADMINISTRATOR)
    assert administrator.has_perm("accounts.add_user")
    assert administrator.has_perm("auth.change_group")


def test_sync_is_idempotent():
    before = {group.name: set(group.permissions.all()) for group in Group.objects.all()}
    roles.roles_sync()
    after = {group.name: set(group.permissions.all()) for group in Group.objects.all()}
    assert before == after
