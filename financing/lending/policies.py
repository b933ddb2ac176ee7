"""Margin policies: the thresholds on the margin ratio, created and changed with an audit of what changed."""

from __future__ import annotations

from django.db import transaction

from accounts.audit import Actor, audit_event_record, snapshot
from core.locks import lock_one
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
def margin_policy_save(*, policy: MarginPolicy, actor: Actor) -> MarginPolicy:
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
    audit_event_record(
        actor=actor,
        action="margin_policy.saved" if before else "margin_policy.created",
        target=policy,
        before=before,
        after=after,
    )
    return policy
