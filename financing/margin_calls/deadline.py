"""Extending a margin call's cure deadline: one risk officer asks, a second decides (four-eyes, through the
approval registry). Only a call still issued moves; the new deadline is later than the old one, in the
future, and at most ``MAX_EXTENSION`` after the old one."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.approvals import ApprovalKind, approval_kind_register
from accounts.audit import Actor, AuditSpec, actor_user, audit_events_record
from accounts.models import ApprovalRequest
from accounts.services import approval_request_create
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from core.locks import lock_one
from financing.enums import MarginCallStatus
from financing.models import MarginCall

MAX_EXTENSION = datetime.timedelta(days=7)
PERMISSION = "financing.change_margincall"


def _parse(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidInput(f"{value!r} is not a date and time.", code="invalid_deadline") from None
    if timezone.is_naive(moment):
        raise InvalidInput("A deadline needs its time zone.", code="invalid_deadline")
    return moment


def _clean(call: MarginCall, proposed: dict[str, Any]) -> dict[str, Any]:
    if set(proposed) != {"deadline"}:
        raise InvalidInput("An extension proposes a new deadline and nothing else.")
    if call.status != MarginCallStatus.ISSUED:
        raise InvalidTransition(
            f"Margin call #{call.pk} is {MarginCallStatus(call.status).label.lower()}: only an issued call's "
            "deadline can move."
        )
    deadline = _parse(proposed["deadline"])
    if deadline <= call.deadline:
        raise InvalidInput("The new deadline must be later than the current one.", code="not_later")
    if deadline <= timezone.now():
        raise InvalidInput("The new deadline must be in the future.", code="not_later")
    if deadline - call.deadline > MAX_EXTENSION:
        raise InvalidInput(f"A deadline moves at most {MAX_EXTENSION.days} days at a time.", code="too_far")
    return {"deadline": deadline.isoformat()}


def _apply(*, target: MarginCall, proposed: dict[str, Any], actor: Actor, request: ApprovalRequest) -> None:
    call = lock_one(MarginCall, target.pk)
    _clean(call, proposed)
    before = call.deadline
    call.deadline = _parse(proposed["deadline"])
    call.save(update_fields=["deadline"])
    audit_events_record(
        [
            AuditSpec(
                actor,
                "margin_call.deadline_extended",
                call,
                before={"deadline": before.isoformat()},
                after={"deadline": call.deadline.isoformat(), "approval_request": request.pk},
            )
        ]
    )


MARGIN_CALL_DEADLINE = approval_kind_register(
    ApprovalKind(
        key="margin_call_deadline",
        label="Extending a margin call's deadline",
        model=MarginCall,
        request_permission=PERMISSION,
        approve_permission=PERMISSION,
        clean=_clean,
        current=lambda call: {"deadline": call.deadline.isoformat()},
        apply=_apply,
        describe=lambda proposed: f"move the cure deadline to {proposed['deadline']}",
    )
)


@transaction.atomic
def margin_call_deadline_extension_request(
    *, call: MarginCall, deadline: datetime.datetime, actor: Actor, reason: str = ""
) -> ApprovalRequest:
    """Ask a second risk officer to move the call's deadline to ``deadline``."""
    user = actor_user(actor)
    if user is None or not user.is_active or not user.has_perm(PERMISSION):
        raise PermissionRefused("Only risk officers may ask to extend a margin call's deadline.")
    if not reason.strip():
        raise InvalidInput("Say why the deadline should move.", code="reason_required")
    return approval_request_create(
        kind=MARGIN_CALL_DEADLINE.key,
        target=call,
        proposed={"deadline": deadline.isoformat()},
        actor=actor,
        reason=reason,
    )
