"""Automatic top-up: a client's standing instruction to move free holdings into the collateral pool.

A client (or staff for them) asks for a standing instruction: which assets may be moved after cash, and
when — at a margin call, or already at the warning level. A second person, a member of staff with the
permission, signs it off through the four-eyes approval registry (kind ``standing_top_up``); the client or
staff may revoke it at any time, with effect at once. At most one instruction is active per client.

When the margin-call ladder issues a call (or reaches warning, for instructions with that trigger) it runs
``auto_top_up`` for the facility: the planner (``collateral.calculations.top_up_plan``) picks cash first,
then the client's assets in order, just enough to bring the ratio to the policy's target; one balanced
ledger transaction moves them from the client's custody account into the pool; the client is told what
moved; and the open call is looked at again at once (``margin_call_reassess``): cured, or its amount due
lowered. What the top-up cannot cover stays due and runs to the deadline."""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from djmoney.money import Money

from accounts.approvals import ApprovalKind, approval_kind_register
from accounts.audit import (
    Actor,
    AuditSpec,
    actor_label,
    actor_user,
    audit_events_record,
    json_value,
)
from accounts.enums import ApprovalStatus
from accounts.exceptions import DuplicatePendingRequest
from accounts.models import ApprovalRequest, Client, User
from accounts.services import approval_request_create, approval_request_withdraw
from collateral.calculations import ratio_above, top_up_plan
from collateral.enums import AssetKind
from collateral.exceptions import AssetNotEligible
from collateral.models import CollateralPool
from collateral.selectors import (
    assets_by_symbol,
    current_prices,
    custody_account_of,
    fx_to_hkd,
    position_inputs,
)
from core.calendar import HONG_KONG
from core.db import id_in
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from core.locks import lock_one, lock_rows
from core.money import ZERO, format_hkd, format_percent
from core.validation import validate_model
from financing.enums import (
    INSTRUCTION_TRANSITIONS,
    FacilityStatus,
    InstructionStatus,
    MarginStatus,
    TopUpOutcome,
    TopUpTrigger,
)
from financing.locks import facility_and_pool_lock
from financing.margin_calls import margin_call_reassess
from financing.models import (
    AutomaticTopUp,
    AutomaticTopUpTransfer,
    Facility,
    StandingTopUpInstruction,
)
from financing.selectors import (
    open_forced_sale,
    open_margin_call,
    open_margin_calls_of,
    pending_sign_off_of,
    valuation_for_holdings,
)
from ledger.enums import AccountKind, TransactionKind
from ledger.models import Account, Leg
from ledger.selectors import balances_of
from ledger.services import LegSpec, transaction_post
from notifications.services import EventSpec, events_record

logger = logging.getLogger(__name__)

HKD = "HKD"
REQUEST_PERMISSION = "financing.add_standingtopupinstruction"
REVOKE_PERMISSION = "financing.change_standingtopupinstruction"
APPROVE_PERMISSION = "financing.approve_standing_top_up"
MAX_ASSETS_IN_ORDER = 20
AT_OR_ABOVE_WARNING = (MarginStatus.WARNING, MarginStatus.MARGIN_CALL, MarginStatus.FORCED_SALE)


def _plain(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"


def _trigger_words(trigger: str) -> str:
    return "at a margin call" if trigger == TopUpTrigger.MARGIN_CALL else "from the warning level"


# --- who may ask and revoke ------------------------------------------------------------------------


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
        raise InvalidInput("asset_order: a list of asset symbols.", details={"asset_order": ["not a list"]})
    symbols = [s.strip().upper() for s in asset_order]
    if len(symbols) > MAX_ASSETS_IN_ORDER:
        raise InvalidInput(
            f"asset_order: at most {MAX_ASSETS_IN_ORDER} assets.", details={"asset_order": ["too long"]}
        )
    repeated = sorted({s for s in symbols if symbols.count(s) > 1})
    if repeated:
        raise InvalidInput(
            f"asset_order: {', '.join(repeated)} named more than once.", details={"asset_order": ["repeated"]}
        )
    assets = assets_by_symbol(symbols)
    unknown = [s for s in symbols if s not in assets]
    if unknown:
        raise InvalidInput(
            f"asset_order: there is no asset {', '.join(unknown)}.",
            details={"asset_order": ["unknown asset"]},
        )
    cash = [s for s in symbols if assets[s].kind == AssetKind.CASH]
    if cash:
        raise InvalidInput(
            f"asset_order: {', '.join(cash)} is cash; cash is always moved first, so leave it out.",
            details={"asset_order": ["cash"]},
        )
    ineligible = [s for s in symbols if not assets[s].eligible]
    if ineligible:
        raise AssetNotEligible(f"{', '.join(ineligible)} is not eligible collateral and cannot be pledged.")
    return symbols


# --- the approval kind: sign-off by a second person --------------------------------------------------


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
    return f"automatic top-up {_trigger_words(proposed['trigger'])}: {order}"


def _revoke(instruction: StandingTopUpInstruction, *, user: User, actor: Actor, reason: str) -> None:
    """Revoke a locked instruction: it moves nothing from now on. Audited; the client and staff told."""
    if InstructionStatus.REVOKED not in INSTRUCTION_TRANSITIONS[instruction.status]:
        raise InvalidTransition(f"{instruction} is already revoked.")
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
                    f"free holdings move into the pool {_trigger_words(instruction.trigger)}, "
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


# --- asking and revoking ---------------------------------------------------------------------------


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
            f"Standing instruction #{pending.pk} of {client} is already waiting for sign-off; "
            "revoke it first, or have it signed off."
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
            f"A standing instruction of {client} is already waiting for sign-off."
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
                    f"{user.get_username()}: {instruction.order_in_words}, {_trigger_words(trigger)}; "
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


# --- the automatic top-up ----------------------------------------------------------------------------


def _instruction_in_force(facility: Facility, trigger: str) -> StandingTopUpInstruction | None:
    """The client's active instruction, locked, when it acts on ``trigger``. A revocation that got there
    first has taken it out of the active ones; one that comes later waits for this top-up."""
    active = lock_rows(
        StandingTopUpInstruction.objects.filter(client_id=facility.client_id, status=InstructionStatus.ACTIVE)
    )
    instruction = active[0] if active else None
    return instruction if instruction is not None and instruction.acts_on(trigger) else None


def _free_holdings_locked(client: Client) -> tuple[Account | None, dict[str, Decimal]]:
    """The client's custody account, locked so that a release cannot take what is being moved, and what it
    holds."""
    custody = custody_account_of(client)
    if custody is None:
        return None, {}
    return custody, balances_of(lock_one(Account, custody.pk))


def _told_already(facility: Facility, call, free_after: dict[str, str]) -> bool:
    """Whether the last run on this facility was for the same call (or the same warning, with no call) and
    left the same free holdings: then a run that moves nothing has nothing new to say."""
    latest = AutomaticTopUp.objects.filter(facility=facility).order_by("-created_at", "-pk").first()
    return (
        latest is not None
        and latest.margin_call_id == (call.pk if call is not None else None)
        and latest.free_holdings_after == free_after
    )


def _transfers_post(plan, *, facility: Facility, custody: Account, pool: CollateralPool, trigger: str, actor):
    """One balanced ledger transaction: each asset from the client's custody account into the pool."""
    return transaction_post(
        kind=TransactionKind.TOP_UP,
        legs=[
            leg
            for t in plan.transfers
            for leg in (LegSpec(custody, t.symbol, -t.quantity), LegSpec(pool.account, t.symbol, t.quantity))
        ],
        memo=(
            f"Automatic top-up of {facility.reference} ({_trigger_words(trigger)}): "
            + ", ".join(f"{_plain(t.quantity)} {t.symbol}" for t in plan.transfers)
            + " from free custody into the pool"
        ),
        actor=actor,
    )


def _outcome(plan) -> str:
    if not plan.moves_anything:
        return TopUpOutcome.NOTHING_MOVED
    return TopUpOutcome.REACHED_TARGET if plan.reaches_target else TopUpOutcome.PARTIAL


@transaction.atomic
def auto_top_up(*, facility: Facility, actor: Actor, trigger: str) -> AutomaticTopUp | None:
    """Run the client's active standing instruction on ``facility`` for ``trigger`` (a margin call was
    issued, or the ratio reached the warning level): move just enough free holdings into the pool to bring
    the ratio to the policy's target, in one ledger transaction, tell the client what moved, and look at the
    open margin call again at once. Returns the record of what was done, or None when there was nothing to
    do: no active instruction for this trigger, the ratio already at or below target, no open call (for a
    margin-call trigger), a forced sale under way, or an unchanged situation already reported.

    Locks in the house order (facility, pool), then the instruction (a revocation waits, or wins) and the
    client's custody account (a release waits, or wins)."""
    if trigger not in TopUpTrigger.values:
        raise InvalidInput(f"trigger: {trigger!r} is not one of {', '.join(TopUpTrigger.values)}.")
    facility, pool = facility_and_pool_lock(facility)
    if pool is None or facility.status == FacilityStatus.CLOSED:
        return None
    instruction = _instruction_in_force(facility, trigger)
    if instruction is None or open_forced_sale(facility) is not None:
        return None  # no instruction for this; or a forced sale is under way, and it decides
    call = open_margin_call(facility)
    holdings = balances_of(pool.account)
    valuation = valuation_for_holdings(facility, holdings)
    debt, target = valuation.debt.total, valuation.thresholds.target
    if not ratio_above(debt, valuation.margin_value, target):
        return None  # at or below target: a second run after a top-up moves nothing
    if call is None and (trigger == TopUpTrigger.MARGIN_CALL or valuation.status not in AT_OR_ABOVE_WARNING):
        return None

    custody, free = _free_holdings_locked(facility.client)
    symbols = sorted({*holdings, *free})
    assets, prices, fx = assets_by_symbol(symbols), current_prices(symbols), fx_to_hkd()
    plan = top_up_plan(
        position_inputs(holdings, assets=assets, prices=prices, fx=fx),
        position_inputs(free, assets=assets, prices=prices, fx=fx),
        debt=debt,
        target=target,
        order=instruction.asset_order,
    )
    moved = {t.symbol: t.quantity for t in plan.transfers}
    free_after = {s: _plain(q - moved.get(s, ZERO)) for s, q in sorted(free.items()) if q != moved.get(s)}
    if not plan.moves_anything and _told_already(facility, call, free_after):
        return None
    txn = (
        _transfers_post(plan, facility=facility, custody=custody, pool=pool, trigger=trigger, actor=actor)
        if plan.moves_anything
        else None
    )
    record = AutomaticTopUp.objects.create(
        facility=facility,
        instruction=instruction,
        margin_call=call,
        trigger=trigger,
        outcome=_outcome(plan),
        transaction=txn,
        debt=Money(debt, HKD),
        margin_value_before=Money(plan.margin_value_before, HKD),
        margin_value_after=Money(plan.margin_value_after, HKD),
        ratio_before=plan.ratio_before,
        ratio_after=plan.ratio_after,
        still_due_repayment=Money(plan.still_due.repayment, HKD),
        still_due_top_up=Money(plan.still_due.cash_top_up, HKD),
        skipped=[{"asset": s.symbol, "reason": s.reason} for s in plan.skipped],
        free_holdings_after=free_after,
        actor_label=actor_label(actor),
    )
    AutomaticTopUpTransfer.objects.bulk_create(
        [
            AutomaticTopUpTransfer(
                top_up=record,
                position=index,
                asset=assets[t.symbol],
                quantity=t.quantity,
                market_value=Money(t.market_value, HKD),
            )
            for index, t in enumerate(plan.transfers, start=1)
        ]
    )
    _record_and_tell(record, plan, facility, call, actor)
    if call is not None and plan.moves_anything:
        margin_call_reassess(call=call, actor=actor, cause="an automatic top-up")
    logger.info("automatic top-up #%s on %s: %s", record.pk, facility.reference, record.outcome)
    return record


def top_up_payload(record: AutomaticTopUp, plan) -> dict:
    return {
        "automatic_top_up": record.pk,
        "facility": record.facility.reference,
        "margin_call": record.margin_call_id,
        "trigger": record.trigger,
        "outcome": record.outcome,
        "transfers": [
            {"asset": t.symbol, "quantity": _plain(t.quantity), "market_value": t.market_value}
            for t in plan.transfers
        ],
        "margin_ratio_before": plan.ratio_before,
        "margin_ratio_after": plan.ratio_after,
        "still_due": {"repayment": plan.still_due.repayment, "cash_top_up": plan.still_due.cash_top_up},
        "skipped": record.skipped,
        "transaction": record.transaction_id,
    }


def _record_and_tell(record: AutomaticTopUp, plan, facility: Facility, call, actor: Actor) -> None:
    """Audit the run and tell the client: every automatic transfer, with what moved; or that nothing could
    be moved and why (staff too when a margin call stands unhelped)."""
    payload = top_up_payload(record, plan)
    ratio_words = f"margin ratio {format_percent(plan.ratio_before)} → {format_percent(plan.ratio_after)}"
    if plan.moves_anything:
        moved = ", ".join(
            f"{_plain(t.quantity)} {t.symbol} ({format_hkd(t.market_value)})" for t in plan.transfers
        )
        rest = (
            ""
            if plan.reaches_target
            else f"; still due: repay {format_hkd(plan.still_due.repayment)} or top up {format_hkd(plan.still_due.cash_top_up)} cash"
        )
        audit = AuditSpec(actor, "automatic_top_up.moved", record, after=json_value(payload))
        event = EventSpec(
            type="collateral.auto_top_up",
            summary=f"Automatic top-up on {facility.reference}: moved {moved} from free custody into the pool; {ratio_words}{rest}",
            payload=payload,
            client=facility.client,
            subject=record,
            notify_staff=False,
        )
    else:
        why = "; ".join(f"{s.symbol}: {s.reason}" for s in plan.skipped) or "nothing is held free in custody"
        stands = (
            f"; margin call #{call.pk} stands: repay {format_hkd(call.repayment_due.amount)} or top up "
            f"{format_hkd(call.top_up_due.amount)} cash by {call.deadline.astimezone(HONG_KONG):%Y-%m-%d %H:%M} HKT"
            if call is not None
            else ""
        )
        audit = AuditSpec(actor, "automatic_top_up.nothing_moved", record, after=json_value(payload))
        event = EventSpec(
            type="collateral.auto_top_up_not_possible",
            summary=f"No automatic top-up on {facility.reference}: nothing free could be moved ({why}){stands}",
            payload=payload,
            client=facility.client,
            subject=record,
            notify_staff=call is not None,
        )
    audit_events_record([audit])
    events_record([event])


# --- the ladder's hook ----------------------------------------------------------------------------------


def _top_ups_each(runs: list[tuple[Facility, str]], actor: Actor) -> int:
    """``auto_top_up`` for each (facility, trigger), each in its own savepoint: one failure is logged and
    the others go ahead; the call it was for stands, and runs to its deadline. Returns how many ran."""
    done = 0
    for facility, trigger in runs:
        try:
            with transaction.atomic():
                done += auto_top_up(facility=facility, actor=actor, trigger=trigger) is not None
        except Exception:
            logger.exception(
                "automatic top-up of %s (%s) failed; nothing was moved and any margin call stands",
                facility.reference,
                trigger,
            )
    return done


def auto_top_ups_after_ladder(*, called: dict[int, int], warned: dict[int, int], actor: Actor) -> int:
    """Called by ``ladder_apply`` after a batch is written: run ``auto_top_up`` for each facility the batch
    issued a margin call on (still issued, not handed to a forced sale) or warned (``called``, ``warned``:
    facility: client), whose client has an active instruction for it. One query when nobody has one (none at
    all when the batch called and warned nobody). Returns how many top-ups ran."""
    candidates = {**warned, **called}  # facility: client
    if not candidates:
        return 0
    triggers = dict(
        StandingTopUpInstruction.objects.filter(
            id_in("client_id", set(candidates.values())), status=InstructionStatus.ACTIVE
        ).values_list("client_id", "trigger")
    )
    chosen = {}
    for facility_id in sorted(candidates):
        instructed = triggers.get(candidates[facility_id])
        trigger = TopUpTrigger.MARGIN_CALL if facility_id in called else TopUpTrigger.WARNING
        if instructed is not None and (
            trigger == TopUpTrigger.MARGIN_CALL or instructed == TopUpTrigger.WARNING
        ):
            chosen[facility_id] = trigger
    facilities = Facility.objects.select_related("client").in_bulk(list(chosen)) if chosen else {}
    runs = [(facilities[facility_id], trigger) for facility_id, trigger in chosen.items()]
    return _top_ups_each(runs, actor)


def auto_top_ups_for_new_free_holdings(*, since: datetime.datetime, actor: Actor) -> int:
    """Called by ``ladder_run``: run ``auto_top_up`` again for the open facility of each client with an active
    instruction who received free holdings since ``since``, so that holdings arriving while a margin call is
    open (or, for a warning trigger, while the ratio is at the warning level) are used at once rather than
    at the next call. ``auto_top_up`` decides whether there is anything to do, and says nothing twice about
    an unchanged situation. One query when nobody has an instruction. Returns how many top-ups ran."""
    clients = set(
        StandingTopUpInstruction.objects.filter(status=InstructionStatus.ACTIVE).values_list(
            "client_id", flat=True
        )
    )
    if not clients:
        return 0
    received = Leg.objects.filter(
        account__kind=AccountKind.CUSTODY,
        account__client_id__in=clients,
        amount__gt=0,
        transaction__posted_at__gte=since,
    ).values("account__client_id")
    facilities = list(
        Facility.objects.filter(client_id__in=received)
        .exclude(status=FacilityStatus.CLOSED)
        .select_related("client")
        .order_by("pk")
    )
    calls = open_margin_calls_of([f.pk for f in facilities])
    return _top_ups_each(
        [(f, TopUpTrigger.MARGIN_CALL if f.pk in calls else TopUpTrigger.WARNING) for f in facilities], actor
    )
