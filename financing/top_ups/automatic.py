"""The automatic top-up: at a margin call (or from warning), a standing instruction moves just enough free
holdings into the pool to bring the ratio to target, in one ledger transaction, and the call is looked at
again at once."""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal

from django.db import transaction
from djmoney.money import Money

from accounts.audit import (
    Actor,
    AuditSpec,
    actor_label,
    actor_user,
    audit_events_record,
    json_value,
)
from accounts.models import Client
from collateral.calculations import ratio_above, top_up_plan
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
from core.exceptions import InvalidInput, PermissionRefused
from core.locks import lock_one, lock_rows
from core.money import HKD, ZERO, format_hkd, format_percent
from financing.enums import (
    FacilityStatus,
    InstructionStatus,
    MarginStatus,
    TopUpOutcome,
    TopUpTrigger,
)
from financing.locks import facility_and_pool_lock
from financing.margin_calls.services import margin_call_reassess
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
    valuation_for_holdings,
)
from financing.top_ups.instructions import trigger_words
from ledger.enums import AccountKind, TransactionKind
from ledger.models import Account, Leg
from ledger.selectors import balances_of
from ledger.services import LegSpec, transaction_post
from notifications.services import EventSpec, events_record

logger = logging.getLogger(__name__)


AT_OR_ABOVE_WARNING = (MarginStatus.WARNING, MarginStatus.MARGIN_CALL, MarginStatus.FORCED_SALE)


def _plain(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"


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
            f"Automatic top-up of {facility.reference} ({trigger_words(trigger)}): "
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
def automatic_top_up_run(*, facility: Facility, actor: Actor, trigger: str) -> AutomaticTopUp | None:
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


RUN_NOW_PERMISSION = "financing.change_standingtopupinstruction"


def automatic_top_up_run_now(*, facility: Facility, actor: Actor) -> AutomaticTopUp | None:
    """Staff run the client's standing instruction now (the admin's and the console's "run now"): for the
    open margin call if there is one, else for the warning level. Credit and risk officers only."""
    user = actor_user(actor)
    if user is None or not user.is_active or not user.has_perm(RUN_NOW_PERMISSION):
        raise PermissionRefused("Only credit and risk officers may run an automatic top-up.")
    trigger = TopUpTrigger.MARGIN_CALL if open_margin_call(facility) else TopUpTrigger.WARNING
    return automatic_top_up_run(facility=facility, actor=actor, trigger=trigger)


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
            type="collateral.automatic_top_up_run",
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


def _top_ups_each(runs: list[tuple[Facility, str]], actor: Actor) -> int:
    """``automatic_top_up_run`` for each (facility, trigger), each in its own savepoint: one failure is logged and
    the others go ahead; the call it was for stands, and runs to its deadline. Returns how many ran."""
    done = 0
    for facility, trigger in runs:
        try:
            with transaction.atomic():
                done += automatic_top_up_run(facility=facility, actor=actor, trigger=trigger) is not None
        except Exception:
            logger.exception(
                "automatic top-up of %s (%s) failed; nothing was moved and any margin call stands",
                facility.reference,
                trigger,
            )
    return done


def automatic_top_ups_after_ladder(*, called: dict[int, int], warned: dict[int, int], actor: Actor) -> int:
    """Called by ``ladder_apply`` after a batch is written: run ``automatic_top_up_run`` for each facility the batch
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


def automatic_top_ups_for_new_free_holdings(*, since: datetime.datetime, actor: Actor) -> int:
    """Called by ``ladder_run``: run ``automatic_top_up_run`` again for the open facility of each client with an active
    instruction who received free holdings since ``since``, so that holdings arriving while a margin call is
    open (or, for a warning trigger, while the ratio is at the warning level) are used at once rather than
    at the next call. ``automatic_top_up_run`` decides whether there is anything to do, and says nothing twice about
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
