"""The four-eyes approval registry: each kind says what it changes, who may ask and who may decide, and how
it takes effect; each app registers its own kinds (docs/design.md, "Four-eyes approvals")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models

from core.exceptions import InvalidInput


@dataclass(frozen=True)
class ApprovalKind:
    key: str
    label: str
    model: type[models.Model]
    request_permission: str
    approve_permission: str
    # Check a proposal against the target; return it normalised (JSON-safe) or raise InvalidInput.
    clean: Callable[[models.Model, dict[str, Any]], dict[str, Any]]
    # The target's current values for the fields the proposal changes.
    current: Callable[[models.Model], dict[str, Any]]
    # Make the change (lock, write, audit): called inside the approval's transaction.
    apply: Callable[..., None]
    describe: Callable[[dict[str, Any]], str] = lambda proposed: ", ".join(
        f"{key.replace('_', ' ')} → {value}" for key, value in proposed.items()
    )
    # Who else may ask, besides staff with ``request_permission``: ``may_request(user, target)`` (a client
    # user asking for their own client's change, say). None: staff only.
    may_request: Callable[[Any, models.Model], bool] | None = None
    # Called inside the decision's transaction when a request is rejected or cancelled, so that a target
    # that exists only to be approved (a standing instruction waiting for sign-off) can follow.
    closed: Callable[..., None] | None = None


_registry: dict[str, ApprovalKind] = {}


def approval_kind_register(kind: ApprovalKind) -> ApprovalKind:
    existing = _registry.get(kind.key)
    if existing is not None and existing != kind:
        raise RuntimeError(f"approval kind {kind.key!r} is registered twice")
    _registry[kind.key] = kind
    return kind


def approval_kind_get(key: str) -> ApprovalKind:
    try:
        return _registry[key]
    except KeyError:
        raise InvalidInput(f"There is no approval of kind {key!r}.", code="unknown_approval_kind") from None


def approval_kinds() -> list[ApprovalKind]:
    return sorted(_registry.values(), key=lambda kind: kind.label)
