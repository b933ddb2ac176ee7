"""The kill switch: one risk officer pauses every forced sale at once; lifting it takes a second person."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.approvals import ApprovalKind, approval_kind_register
from accounts.audit import Actor, AuditSpec, actor_user, audit_events_record
from accounts.services import approval_request_create
from core.exceptions import InvalidInput, PermissionRefused
from core.locks import lock_one
from core.tasks import task_queue_on_commit
from financing.enums import (
    ForcedSaleStatus,
    PauseReason,
)
from financing.models import ForcedSale, KillSwitch
from notifications.services import EventSpec, events_record


def kill_switch() -> KillSwitch:
    KillSwitch.objects.bulk_create([KillSwitch(id=1)], ignore_conflicts=True)
    return KillSwitch.objects.get(pk=1)


@transaction.atomic
def kill_switch_engage(*, actor: Actor, reason: str) -> KillSwitch:
    """Stop every forced sale at once (open venue orders are cancelled on each sale's next step)."""
    user = actor_user(actor)
    if user is None or not user.has_perm("financing.engage_killswitch"):
        raise PermissionRefused("Only risk officers may engage the kill switch.")
    if not reason.strip():
        raise InvalidInput("Say why the kill switch is engaged.")
    switch = lock_one(KillSwitch, kill_switch().pk)
    if switch.engaged:
        return switch
    switch.engaged, switch.reason, switch.changed_by, switch.changed_at = (
        True,
        reason[:300],
        user,
        timezone.now(),
    )
    switch.save()
    audit_events_record(
        [
            AuditSpec(
                actor,
                "kill_switch.engaged",
                switch,
                before={"engaged": False},
                after={"engaged": True, "reason": reason},
            )
        ]
    )
    events_record(
        [
            EventSpec(
                type="kill_switch.engaged",
                summary=f"Forced-sale kill switch engaged by {user.username}: {reason}",
                payload={"reason": reason},
            )
        ]
    )
    return switch


def _kill_switch_lift_clean(switch: KillSwitch, proposed: dict[str, Any]) -> dict[str, Any]:
    if proposed != {"engaged": False}:
        raise InvalidInput("Lifting the kill switch proposes exactly engaged: false.")
    if not switch.engaged:
        raise InvalidInput("The kill switch is not engaged.", code="no_change")
    return {"engaged": False}


def _kill_switch_lift_apply(*, target: KillSwitch, proposed: dict[str, Any], actor: Actor, request) -> None:
    switch = lock_one(KillSwitch, target.pk)
    switch.engaged, switch.changed_by, switch.changed_at = False, actor_user(actor), timezone.now()
    switch.save()
    audit_events_record(
        [
            AuditSpec(
                actor,
                "kill_switch.lifted",
                switch,
                before={"engaged": True},
                after={"engaged": False, "approval_request": request.pk},
            )
        ]
    )
    events_record(
        [
            EventSpec(
                type="kill_switch.lifted",
                summary="Forced-sale kill switch lifted (four-eyes)",
                payload={"approval_request": request.pk},
            )
        ]
    )
    for sale_id in ForcedSale.objects.filter(
        status=ForcedSaleStatus.PAUSED, pause_reason=PauseReason.KILL_SWITCH
    ).values_list("pk", flat=True):
        task_queue_on_commit("financing.forced_sale_step", sale_id)


KILL_SWITCH_LIFT = approval_kind_register(
    ApprovalKind(
        key="kill_switch_lift",
        label="Lifting the forced-sale kill switch",
        model=KillSwitch,
        request_permission="financing.engage_killswitch",
        approve_permission="financing.lift_killswitch",
        clean=_kill_switch_lift_clean,
        current=lambda switch: {"engaged": switch.engaged},
        apply=_kill_switch_lift_apply,
        describe=lambda proposed: "lift the kill switch: forced sales resume",
    )
)


def kill_switch_lift_request(*, actor: Actor, reason: str = ""):
    return approval_request_create(
        kind=KILL_SWITCH_LIFT.key,
        target=kill_switch(),
        proposed={"engaged": False},
        actor=actor,
        reason=reason,
    )
