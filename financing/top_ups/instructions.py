"""Standing top-up instructions: asked for by the client (or staff for them), signed off by a second person
through the approval registry, revoked at any time; at most one active per client."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.approvals import ApprovalKind, approval_kind_register
from accounts.audit import (
    Actor,
    AuditSpec,
    actor_user,
    audit_events_record,
)
from accounts.enums import ApprovalStatus
from accounts.exceptions import DuplicatePendingRequest
from accounts.models import ApprovalRequest, Client, User
from accounts.services import approval_request_create, approval_request_withdraw
from collateral.enums import AssetKind
from collateral.exceptions import AssetNotEligible
from collateral.selectors import (
    assets_by_symbol,
)
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from core.locks import lock_one, lock_rows
from core.validation import validate_model
from financing.enums import (
    INSTRUCTION_TRANSITIONS,
    InstructionStatus,
    TopUpTrigger,
)
from financing.models import (
    StandingTopUpInstruction,
)
from financing.selectors import (
    pending_sign_off_of,
)
from notifications.services import EventSpec, events_record

REQUEST_PERMISSION = "financing.add_standingtopupinstruction"


REVOKE_PERMISSION = "financing.change_standingtopupinstruction"


APPROVE_PERMISSION = "financing.approve_standing_top_up"


MAX_ASSETS_IN_ORDER = 20


def trigger_words(trigger: str) -> str:
    """When an instruction acts, in words."""
    return "at a margin call" if trigger == TopUpTrigger.MARGIN_CALL else "from the warning level"


def _named_person(actor: Actor, doing: str) -> User:
    """Standing instructions are asked for, signed off and revoked by people, not systems."""
    user = actor_user(actor)
    if user is None or not user.is_active:
        raise PermissionRefused(f"Only a named person may {doing}; an API key or the system cannot.")
    return user


def _may_act_for(user: User, client: Client, permission: str, doing: str) -> None:
    """A client user for their own client; staff with the permission for any client."""
    if user.client_id is not None:
        if user.client_id != client.pk:
            raise PermissionRefused(f"{user.get_username()} may {doing} only for their own client.")
        return
    if not user.has_perm(permission):
        raise PermissionRefused(f"{user.get_username()} may not {doing}.")


def _asset_order_clean(asset_order: Any) -> list[str]:
    """The symbols a client chose, upper-case, each an eligible non-cash asset, each once."""
    if not isinstance(asset_order, list | tuple) or not all(isinstance(s, str) for s in asset_order):
        raise InvalidInput(
            _("asset_order: a list of asset symbols."), details={"asset_order": ["not a list"]}
        )
    symbols = [s.strip().upper() for s in asset_order]
    if len(symbols) > MAX_ASSETS_IN_ORDER:
        raise InvalidInput(
            _("asset_order: at most %(count)s assets.") % {"count": MAX_ASSETS_IN_ORDER},
            details={"asset_order": ["too long"]},
        )
    repeated = sorted({s for s in symbols if symbols.count(s) > 1})
    if repeated:
        raise InvalidInput(
            _("asset_order: %(assets)s named more than once.") % {"assets": ", ".join(repeated)},
            details={"asset_order": ["repeated"]},
        )
    assets = assets_by_symbol(symbols)
    unknown = [s for s in symbols if s not in assets]
    if unknown:
        raise InvalidInput(
            _("asset_order: there is no asset %(assets)s.") % {"assets": ", ".join(unknown)},
            details={"asset_order": ["unknown asset"]},
        )
    cash = [s for s in symbols if assets[s].kind == AssetKind.CASH]
    if cash:
        raise InvalidInput(
            _("asset_order: %(assets)s is cash; cash is always moved first, so leave it out.")
            % {"assets": ", ".join(cash)},
            details={"asset_order": ["cash"]},
        )
    ineligible = [s for s in symbols if not assets[s].eligible]
    if ineligible:
        raise AssetNotEligible(
            _("%(assets)s is not eligible collateral and cannot be pledged.")
            % {"assets": ", ".join(ineligible)}
        )
    return symbols


def _sign_off_clean(instruction: StandingTopUpInstruction, proposed: dict[str, Any]) -> dict[str, Any]:
    if instruction.status != InstructionStatus.PENDING_SIGN_OFF:
        raise InvalidInput(
            f"{instruction} is {instruction.get_status_display().lower()}; only an instruction waiting for "
            "sign-off can be signed off.",
            code="not_pending_sign_off",
        )
    expected = {"trigger": instruction.trigger, "asset_order": list(instruction.asset_order)}
    if proposed != expected:
        raise InvalidInput("A sign-off approves the instruction as it was asked for, nothing else.")
    _asset_order_clean(instruction.asset_order)  # still eligible now, not only when asked
    return expected


def _describe(proposed: dict[str, Any]) -> str:
    order = ", ".join(["cash", *proposed["asset_order"]])
    return f"automatic top-up {trigger_words(proposed['trigger'])}: {order}"


def _revoke(instruction: StandingTopUpInstruction, *, user: User, actor: Actor, reason: str) -> None:
    """Revoke a locked instruction: it moves nothing from now on. Audited; the client and staff told."""
    if InstructionStatus.REVOKED not in INSTRUCTION_TRANSITIONS[instruction.status]:
        raise InvalidTransition(_("%(instruction)s is already revoked.") % {"instruction": instruction})
    before = instruction.status
    instruction.status = InstructionStatus.REVOKED
    instruction.revoked_by = user
    instruction.revoked_at = timezone.now()
    instruction.revoke_reason = reason[:300]
    instruction.save(update_fields=["status", "revoked_by", "revoked_at", "revoke_reason"])
    audit_events_record(
        [
            AuditSpec(
                actor,
                "standing_top_up.revoked",
                instruction,
                before={"status": before},
                after={"status": instruction.status, "revoked_by": user.get_username(), "reason": reason},
            )
        ]
    )
    events_record(
        [
            EventSpec(
                type="standing_top_up.revoked",
                summary=f"Standing top-up instruction #{instruction.pk} of {instruction.client.name} revoked: {reason}",
                payload=_instruction_payload(instruction),
                client=instruction.client,
                subject=instruction,
            )
        ]
    )


def _sign_off_apply(
    *, target: StandingTopUpInstruction, proposed: dict[str, Any], actor: Actor, request
) -> None:
    instruction = lock_one(StandingTopUpInstruction, target.pk)
    if InstructionStatus.ACTIVE not in INSTRUCTION_TRANSITIONS[instruction.status]:
        raise InvalidTransition(f"{instruction} cannot be signed off.")
    user = _named_person(actor, "sign off a standing top-up instruction")
    replaced = lock_rows(
        StandingTopUpInstruction.objects.filter(
            client_id=instruction.client_id, status=InstructionStatus.ACTIVE
        )
    )
    for old in replaced:
        _revoke(old, user=user, actor=actor, reason=f"replaced by standing instruction #{instruction.pk}")
    instruction.status = InstructionStatus.ACTIVE
    instruction.signed_off_by = user
    instruction.signed_off_at = timezone.now()
    instruction.save(update_fields=["status", "signed_off_by", "signed_off_at"])
    audit_events_record(
        [
            AuditSpec(
                actor,
                "standing_top_up.signed_off",
                instruction,
                before={"status": InstructionStatus.PENDING_SIGN_OFF},
                after={
                    "status": instruction.status,
                    "signed_off_by": user.get_username(),
                    "approval_request": request.pk,
                    "replaced": [old.pk for old in replaced],
                },
            )
        ]
    )
    events_record(
        [
            EventSpec(
                type="standing_top_up.activated",
                summary=(
                    f"Standing top-up instruction #{instruction.pk} of {instruction.client.name} is active: "
                    f"free holdings move into the pool {trigger_words(instruction.trigger)}, "
                    f"{instruction.order_in_words}"
                ),
                payload=_instruction_payload(instruction),
                client=instruction.client,
                subject=instruction,
                notify_staff=False,
            )
        ]
    )


def _sign_off_closed(*, target: StandingTopUpInstruction, actor: Actor, request) -> None:
    """A rejected or cancelled sign-off ends the instruction that waited for it."""
    instruction = lock_one(StandingTopUpInstruction, target.pk)
    if instruction.status != InstructionStatus.PENDING_SIGN_OFF:
        return
    if request.status == ApprovalStatus.REJECTED:
        reason = "sign-off refused" + (f": {request.decision_note}" if request.decision_note else "")
    else:
        reason = "the request for sign-off was cancelled by its maker"
    _revoke(instruction, user=actor_user(actor), actor=actor, reason=reason)


STANDING_TOP_UP = approval_kind_register(
    ApprovalKind(
        key="standing_top_up",
        label="Standing top-up instruction",
        model=StandingTopUpInstruction,
        request_permission=REQUEST_PERMISSION,
        approve_permission=APPROVE_PERMISSION,
        clean=_sign_off_clean,
        current=lambda instruction: {"status": instruction.status},
        apply=_sign_off_apply,
        describe=_describe,
        may_request=lambda user, instruction: (
            user.client_id is not None and user.client_id == instruction.client_id
        ),
        closed=_sign_off_closed,
    )
)


def _instruction_payload(instruction: StandingTopUpInstruction) -> dict:
    return {
        "standing_top_up_instruction": instruction.pk,
        "client": instruction.client.reference,
        "status": instruction.status,
        "trigger": instruction.trigger,
        "asset_order": list(instruction.asset_order),
    }


@transaction.atomic
def standing_top_up_request(
    *, client: Client, trigger: str, asset_order: list[str], actor: Actor, reason: str = ""
) -> StandingTopUpInstruction:
    """A client user (for their own client) or a member of staff asks for a standing instruction. It waits
    for sign-off by a second person: a member of staff with the permission who did not ask for it."""
    user = _named_person(actor, "ask for a standing top-up instruction")
    _may_act_for(user, client, REQUEST_PERMISSION, "ask for a standing top-up instruction")
    if trigger not in TopUpTrigger.values:
        raise InvalidInput(
            f"trigger: {trigger!r} is not one of {', '.join(TopUpTrigger.values)}.",
            details={"trigger": ["not a trigger"]},
        )
    order = _asset_order_clean(asset_order)
    pending = StandingTopUpInstruction.objects.filter(
        client=client, status=InstructionStatus.PENDING_SIGN_OFF
    ).first()
    if pending is not None:
        raise DuplicatePendingRequest(
            _(
                "Standing instruction #%(instruction)s of %(client)s is already waiting for sign-off; revoke it "
                "first, or have it signed off."
            )
            % {"instruction": pending.pk, "client": client}
        )
    instruction = StandingTopUpInstruction(
        client=client, trigger=trigger, asset_order=order, requested_by=user
    )
    validate_model(instruction, exclude=["client", "requested_by"])
    try:
        with transaction.atomic():
            instruction.save()
    except IntegrityError as error:  # a concurrent request won the pending slot
        raise DuplicatePendingRequest(
            _("A standing instruction of %(client)s is already waiting for sign-off.") % {"client": client}
        ) from error
    audit_events_record(
        [
            AuditSpec(
                actor,
                "standing_top_up.requested",
                instruction,
                after={"client": client.reference, "trigger": trigger, "asset_order": order},
            )
        ]
    )
    approval_request_create(
        kind=STANDING_TOP_UP.key,
        target=instruction,
        proposed={"trigger": trigger, "asset_order": order},
        actor=actor,
        reason=reason,
    )
    events_record(
        [
            EventSpec(
                type="standing_top_up.requested",
                summary=(
                    f"Standing top-up instruction #{instruction.pk} of {client.name} asked for by "
                    f"{user.get_username()}: {instruction.order_in_words}, {trigger_words(trigger)}; "
                    "it takes effect when a member of staff signs it off"
                ),
                payload=_instruction_payload(instruction),
                client=client,
                subject=instruction,
            )
        ]
    )
    return instruction


@transaction.atomic
def standing_top_up_revoke(
    *, instruction: StandingTopUpInstruction, actor: Actor, reason: str = ""
) -> StandingTopUpInstruction:
    """The client (their own) or staff end an instruction, pending or active, with effect at once: no
    automatic top-up runs on it from now. A sign-off still waiting is withdrawn."""
    user = _named_person(actor, "revoke a standing top-up instruction")
    _may_act_for(user, instruction.client, REVOKE_PERMISSION, "revoke a standing top-up instruction")
    pending = pending_sign_off_of(instruction)
    if pending is not None:  # the approval request first: the order the sign-off locks in
        pending = lock_one(ApprovalRequest, pending.pk)
        if pending.status != ApprovalStatus.PENDING:  # decided meanwhile: nothing to withdraw
            pending = None
    instruction = lock_one(StandingTopUpInstruction, instruction.pk)
    words = reason.strip() or f"revoked by {user.get_username()}"
    _revoke(instruction, user=user, actor=actor, reason=words)
    if pending is not None:
        approval_request_withdraw(
            request=pending, actor=actor, reason=f"standing instruction #{instruction.pk} revoked: {words}"
        )
    return instruction
