"""Margin policies: the thresholds on the margin ratio, created and changed with an audit of what changed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.approvals import ApprovalKind, approval_kind_register
from accounts.audit import Actor, audit_event_record, snapshot
from accounts.exceptions import FourEyesRequired
from accounts.models import ApprovalRequest
from accounts.services import approval_request_create
from core.exceptions import InvalidInput
from core.locks import lock_one
from core.parsing import parse_amount
from core.validation import validate_model
from financing.models import (
    MarginPolicy,
)

POLICY_FIELDS = [
    "name",
    "is_default",
    "max_advance",
    "warning",
    "margin_call",
    "forced_sale",
    "target",
    "cure_business_days",
    "cure_time",
    "sale_cost_rate",
    "sale_order",
    "requires_sale_approval",
]


@transaction.atomic
def margin_policy_save(
    *, policy: MarginPolicy, actor: Actor, approval_request: int | None = None
) -> MarginPolicy:
    """Create or change a margin policy (thresholds checked by the model and the database), audited with
    what changed."""
    before = None
    if policy.pk is not None:
        before = snapshot(lock_one(MarginPolicy, policy.pk), POLICY_FIELDS)
    validate_model(policy)
    if policy.is_default:
        MarginPolicy.objects.filter(is_default=True).exclude(pk=policy.pk).update(is_default=False)
    policy.save()
    after = snapshot(policy, POLICY_FIELDS)
    if before is not None:
        changed = [name for name in POLICY_FIELDS if before[name] != after[name]]
        before, after = {k: before[k] for k in changed}, {k: after[k] for k in changed}
    if approval_request is not None:
        after = {**after, "approval_request": approval_request}
    audit_event_record(
        actor=actor,
        action="margin_policy.saved" if before else "margin_policy.created",
        target=policy,
        before=before,
        after=after,
    )
    return policy


# The terms that decide when a facility is called and sold: changed only through a four-eyes request.
THRESHOLD_FIELDS = ["max_advance", "warning", "margin_call", "forced_sale", "target"]
FOUR_EYES_FIELDS = [*THRESHOLD_FIELDS, "is_default"]


@transaction.atomic
def margin_policy_create(*, actor: Actor, name: str, **fields: Any) -> MarginPolicy:
    """A new policy, not the default (making one the default is a four-eyes change: every facility without a
    policy of its own would move to its thresholds)."""
    unknown = sorted(set(fields) - set(POLICY_FIELDS))
    if unknown:
        raise InvalidInput(f"A margin policy has no field {', '.join(unknown)}.")
    if fields.get("is_default"):
        raise FourEyesRequired(
            "A new policy is not the default at once: ask for it with a change request a second risk officer "
            "approves, once the policy exists."
        )
    if MarginPolicy.objects.filter(name=name).exists():
        raise InvalidInput(f"There is already a margin policy named {name}.", code="duplicate_policy")
    return margin_policy_save(policy=MarginPolicy(name=name, **fields), actor=actor)


@transaction.atomic
def margin_policy_change(*, policy: MarginPolicy, actor: Actor, **changes: Any) -> MarginPolicy:
    """Change what is not a threshold (name, cure period, sale terms) at once; thresholds and the default
    are refused here (``margin_policy_change_request``)."""
    four_eyes = [name for name in FOUR_EYES_FIELDS if name in changes]
    if four_eyes:
        raise FourEyesRequired(
            f"{', '.join(name.replace('_', ' ') for name in four_eyes)} of a margin policy change only through "
            "a change request a second risk officer approves; nothing was changed.",
            details={"fields": four_eyes},
        )
    unknown = sorted(set(changes) - set(POLICY_FIELDS))
    if unknown:
        raise InvalidInput(f"A margin policy has no field {', '.join(unknown)}.")
    policy = lock_one(MarginPolicy, policy.pk)
    if "name" in changes and MarginPolicy.objects.filter(name=changes["name"]).exclude(pk=policy.pk).exists():
        raise InvalidInput(
            f"There is already a margin policy named {changes['name']}.", code="duplicate_policy"
        )
    for name, value in changes.items():
        setattr(policy, name, value)
    return margin_policy_save(policy=policy, actor=actor)


def _thresholds_clean(policy: MarginPolicy, proposed: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(proposed) - set(FOUR_EYES_FIELDS))
    if not proposed or unknown:
        raise InvalidInput(
            f"A margin policy change request proposes some of: {', '.join(FOUR_EYES_FIELDS)}"
            + (f" (not {', '.join(unknown)})." if unknown else ".")
        )
    cleaned: dict[str, Any] = {}
    for name, value in proposed.items():
        if name == "is_default":
            if value is not True:
                raise InvalidInput(
                    "is_default can only be asked for as true: another policy becomes the default instead."
                )
            cleaned[name] = True
        else:
            cleaned[name] = f"{parse_amount(value, field=name, decimals=4):f}"
    candidate = MarginPolicy(**{**snapshot_values(policy), **cleaned})
    candidate.pk = policy.pk
    # The thresholds must rise, as the database also checks.
    validate_model(candidate, exclude=["id", "name", "is_default"])
    current = snapshot_values(policy)
    if all(
        current[name] is True if name == "is_default" else Decimal(current[name]) == Decimal(cleaned[name])
        for name in cleaned
    ):
        raise InvalidInput(f"{policy.name} already has these values.", code="no_change")
    return cleaned


def snapshot_values(policy: MarginPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in POLICY_FIELDS}


def _thresholds_apply(*, target: MarginPolicy, proposed: dict[str, Any], actor: Actor, request) -> None:
    policy = lock_one(MarginPolicy, target.pk)
    for name, value in proposed.items():
        setattr(policy, name, value if name == "is_default" else Decimal(value))
    margin_policy_save(policy=policy, actor=actor, approval_request=request.pk)


MARGIN_POLICY_CHANGE = approval_kind_register(
    ApprovalKind(
        key="margin_policy",
        label="Margin policy thresholds change",
        model=MarginPolicy,
        request_permission="financing.change_marginpolicy",
        approve_permission="financing.approve_margin_policy",
        clean=_thresholds_clean,
        current=lambda policy: {
            name: (policy.is_default if name == "is_default" else f"{getattr(policy, name):f}")
            for name in FOUR_EYES_FIELDS
        },
        apply=_thresholds_apply,
    )
)


def margin_policy_change_request(
    *, policy: MarginPolicy, actor: Actor, reason: str = "", **proposed: Any
) -> ApprovalRequest:
    """Ask for new thresholds (or for the policy to become the default); they take effect when a second risk
    officer approves."""
    return approval_request_create(
        kind=MARGIN_POLICY_CHANGE.key, target=policy, proposed=proposed, actor=actor, reason=reason
    )
