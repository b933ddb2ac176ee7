"""Writes for users, roles (groups) and permissions. Who may do what is itself a state change: each of these
runs in one transaction with its audit event, and the admin's user and group pages call them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from accounts.audit import Actor, SystemActor, actor_user, audit_event_record, snapshot
from accounts.models import User
from core.exceptions import InvalidInput, PermissionRefused
from core.locks import lock_one
from core.validation import validate_model

USER_FIELDS = [
    "username",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_staff",
    "is_superuser",
    "client",
]


def _require(actor: Actor, permission: str, doing: str) -> None:
    """A person needs the permission; the platform itself (syncing the roles after a migration) does not."""
    if isinstance(actor, SystemActor):
        return
    user = actor_user(actor)
    if user is None or not user.is_active or not user.has_perm(permission):
        raise PermissionRefused(f"{getattr(user, 'username', None) or 'This actor'} may not {doing}.")


def permission_keys(permissions: Iterable[Permission]) -> list[str]:
    """Permissions as ``app_label.codename``, sorted: how they read in the audit trail."""
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in permissions)


def _permissions_of(queryset) -> list[str]:
    return permission_keys(queryset.select_related("content_type"))


# --- users -------------------------------------------------------------------------------------


@transaction.atomic
def user_create(*, actor: Actor, username: str, password: str | None, **fields: Any) -> User:
    """A new login. ``password`` None: none usable (the person cannot log in with a password)."""
    _require(actor, "accounts.add_user", "create users")
    unknown = set(fields) - set(USER_FIELDS)
    if unknown:
        raise InvalidInput(f"These user fields cannot be set here: {', '.join(sorted(unknown))}.")
    if User.objects.filter(username=username).exists():
        raise InvalidInput(f"The username {username} is taken.", code="duplicate_username")
    user = User(username=username, **fields)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    validate_model(user, exclude=["password"])
    user.save()
    audit_event_record(
        actor=actor,
        action="user.created",
        target=user,
        after={**snapshot(user, USER_FIELDS), "password": "set" if password is not None else "unusable"},
    )
    return user


@transaction.atomic
def user_update(*, user: User, actor: Actor, **changes: Any) -> User:
    unknown = set(changes) - set(USER_FIELDS)
    if unknown:
        raise InvalidInput(f"These user fields cannot be changed here: {', '.join(sorted(unknown))}.")
    _require(actor, "accounts.change_user", "change users")
    user = lock_one(User, user.pk)
    before = snapshot(user, list(changes))
    for name, value in changes.items():
        setattr(user, name, value)
    after = snapshot(user, list(changes))
    changed = [name for name in changes if before[name] != after[name]]
    if not changed:
        return user
    validate_model(user, exclude=["password"])
    user.save(update_fields=[User._meta.get_field(name).attname for name in changed])
    audit_event_record(
        actor=actor,
        action="user.updated",
        target=user,
        before={name: before[name] for name in changed},
        after={name: after[name] for name in changed},
    )
    return user


@transaction.atomic
def user_password_changed_record(*, user: User, actor: Actor) -> None:
    """Audit a password set through Django's own password forms (the value is never recorded)."""
    audit_event_record(
        actor=actor,
        action="user.password_changed",
        target=user,
        after={"password": "set" if user.has_usable_password() else "unusable"},
    )


@transaction.atomic
def user_roles_set(
    *,
    user: User,
    actor: Actor,
    groups: Iterable[Group] | None = None,
    permissions: Iterable[Permission] | None = None,
) -> User:
    """Set a user's roles (groups) and their own permissions; None leaves that part as it is."""
    _require(actor, "accounts.change_user", "change users' roles")
    user = lock_one(User, user.pk)
    before = {"groups": sorted(user.groups.values_list("name", flat=True)),
              "permissions": _permissions_of(user.user_permissions.all())}  # fmt: skip
    if groups is not None:
        user.groups.set(list(groups))
    if permissions is not None:
        user.user_permissions.set(list(permissions))
    after = {"groups": sorted(user.groups.values_list("name", flat=True)),
             "permissions": _permissions_of(user.user_permissions.all())}  # fmt: skip
    changed = [key for key in before if before[key] != after[key]]
    if changed:
        audit_event_record(
            actor=actor,
            action="user.roles_changed",
            target=user,
            before={key: before[key] for key in changed},
            after={key: after[key] for key in changed},
        )
    return user


# --- roles (groups) ----------------------------------------------------------------------------


@transaction.atomic
def group_create(*, actor: Actor, name: str) -> Group:
    _require(actor, "auth.add_group", "create roles")
    if Group.objects.filter(name=name).exists():
        raise InvalidInput(f"There is already a role named {name}.", code="duplicate_group")
    group = Group(name=name)
    validate_model(group)
    group.save()
    audit_event_record(actor=actor, action="group.created", target=group, after={"name": name})
    return group


@transaction.atomic
def group_rename(*, group: Group, actor: Actor, name: str) -> Group:
    _require(actor, "auth.change_group", "change roles")
    group = lock_one(Group, group.pk)
    if group.name == name:
        return group
    before = group.name
    group.name = name
    validate_model(group)
    group.save(update_fields=["name"])
    audit_event_record(
        actor=actor, action="group.renamed", target=group, before={"name": before}, after={"name": name}
    )
    return group


@transaction.atomic
def group_permissions_set(*, group: Group, actor: Actor, permissions: Iterable[Permission]) -> Group:
    """Set what a role may do. Audited with what was added and what was taken away."""
    _require(actor, "auth.change_group", "change what a role may do")
    group = lock_one(Group, group.pk)
    before = _permissions_of(group.permissions.all())
    group.permissions.set(list(permissions))
    after = _permissions_of(group.permissions.all())
    if before != after:
        audit_event_record(
            actor=actor,
            action="group.permissions_changed",
            target=group,
            before={"permissions": before},
            after={
                "permissions": after,
                "added": sorted(set(after) - set(before)),
                "removed": sorted(set(before) - set(after)),
            },
        )
    return group


@transaction.atomic
def group_delete(*, group: Group, actor: Actor) -> None:
    _require(actor, "auth.delete_group", "delete roles")
    group = lock_one(Group, group.pk)
    audit_event_record(
        actor=actor,
        action="group.deleted",
        target=group,
        before={
            "name": group.name,
            "permissions": _permissions_of(group.permissions.all()),
            "users": sorted(group.user_set.values_list("username", flat=True)),
        },
    )
    group.delete()
