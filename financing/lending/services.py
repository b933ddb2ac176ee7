"""Lending: facilities, drawdowns, repayments, collateral top-ups and withdrawals, fees. Each locks in the
house order, writes through the ledger and is audited, or refuses and writes nothing (docs/design.md)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from djmoney.money import Money

from accounts.approvals import ApprovalKind, approval_kind_register
from accounts.audit import Actor, audit_event_record, snapshot
from accounts.models import ApprovalRequest, Client
from accounts.services import approval_request_create
from collateral.calculations import margin_ratio, ratio_above
from collateral.enums import MovementKind
from collateral.models import Asset, CollateralMovement, CollateralPool
from collateral.selectors import pool_holdings
from collateral.services import collateral_deposit, collateral_movement_post, parse_quantity, pool_open
from core.calendar import HONG_KONG
from core.exceptions import InvalidInput, InvalidTransition
from core.locks import lock_one
from core.money import HKD, ZERO, format_hkd, format_percent
from core.parsing import parse_amount, parse_hkd
from core.validation import validate_model
from financing import exceptions as refusals
from financing.calculations import allocate_repayment
from financing.enums import (
    FacilityStatus,
    RateKind,
)
from financing.locks import (
    facility_and_pool_lock,
    facility_lock,
    firm_exposure_lock,
    one_round_trip,
    pool_lock_then,
    sweep_lock,
)
from financing.margin_calls.services import margin_call_reassess
from financing.models import (
    Drawdown,
    Facility,
    MarginCall,
    MarginPolicy,
    MarginState,
    Repayment,
)
from financing.selectors import (
    DrawdownLimits,
    FacilityRead,
    drawdown_limits,
    drawdown_limits_of_row,
    drawdown_limits_query,
    facility_debt,
    facility_read,
    facility_read_of_rows,
    facility_read_statement,
    open_facility_of,
    open_forced_sale,
    open_margin_call,
    total_margin_loans_query,
    valuation_for_holdings,
)
from ledger.enums import AccountKind, TransactionKind
from ledger.models import Account
from ledger.services import LegSpec, account_for, firm_account, firm_account_code, transaction_post


@transaction.atomic
def facility_open(
    *,
    client: Client,
    limit: Any,
    actor: Actor,
    rate_kind: str = RateKind.FIXED,
    fixed_rate: Any = None,
    base_rate_name: str = "",
    spread: Any = "0",
    policy: MarginPolicy | None = None,
    opened_on: datetime.date | None = None,
    reference: str | None = None,
) -> Facility:
    if open_facility_of(client) is not None:
        raise InvalidInput(f"{client} already has an open facility.", code="facility_exists")
    limit_money = parse_hkd(limit, field="limit", positive=True)
    facility = Facility(
        reference=reference or "",
        client=client,
        limit=limit_money,
        rate_kind=rate_kind,
        fixed_rate=None
        if fixed_rate in (None, "")
        else parse_amount(fixed_rate, field="fixed_rate", decimals=8),
        base_rate_name=base_rate_name,
        spread=parse_amount(spread, field="spread", decimals=8),
        policy=policy,
        opened_on=opened_on or timezone.localdate(),
    )
    key = reference or f"{client.reference}-{Facility.objects.filter(client=client).count() + 1}"
    facility.principal_account = account_for(kind=AccountKind.LOAN_PRINCIPAL, client=client, key=key)
    facility.interest_account = account_for(kind=AccountKind.INTEREST_RECEIVABLE, client=client, key=key)
    facility.fees_account = account_for(kind=AccountKind.FEES_RECEIVABLE, client=client, key=key)
    validate_model(facility, exclude=["reference"])
    facility.save()
    if not reference:
        facility.reference = f"F{facility.pk:06d}"
        facility.save(update_fields=["reference"])
    pool_open(client=client, actor=actor)
    audit_event_record(
        actor=actor,
        action="facility.opened",
        target=facility,
        after=snapshot(facility, ["limit", "rate_kind", "fixed_rate", "base_rate_name", "spread", "policy"]),
    )
    return facility


@transaction.atomic
def facility_status_change(*, facility: Facility, status: str, actor: Actor, reason: str = "") -> Facility:
    """Suspend (no new drawdowns; repayments, top-ups and the margin ladder go on), resume, or close: closing
    is refused while the facility owes anything, or has an open margin call or forced sale."""
    if status == FacilityStatus.CLOSED:
        # The sweep reads whether a facility is open from its margin state (``MarginState.open``). A sweep
        # under way may be valuing the facility for the first time, from a reading that has it open: closing
        # waits for it (a lock sweeps hold alone), so that the state it writes is there to be marked closed.
        # Taken before the facility's row: the sweep's commit checks the key of the state it writes against it.
        sweep_lock(shared=True)
    facility = lock_one(Facility, facility.pk)
    if status not in FacilityStatus.values:
        raise InvalidInput(f"{status!r} is not a facility status.")
    if facility.status == FacilityStatus.CLOSED:
        raise InvalidTransition(f"{facility.reference} is closed.")
    if status == facility.status:
        raise InvalidTransition(
            f"{facility.reference} is already {facility.get_status_display().lower()}.", code="no_change"
        )
    if status == FacilityStatus.CLOSED:
        call = open_margin_call(facility)
        if call is not None:
            raise InvalidTransition(
                f"{facility.reference} has an open margin call (#{call.pk}); it can be closed once the call "
                "is closed.",
                code="open_margin_call",
                details={"margin_call": call.pk},
            )
        sale = open_forced_sale(facility)
        if sale is not None:
            raise InvalidTransition(
                f"{facility.reference} has a forced sale under way (#{sale.pk}); it can be closed once the "
                "sale is finished.",
                code="open_forced_sale",
                details={"forced_sale": sale.pk},
            )
        debt = facility_debt(facility)
        if debt.total != 0:
            raise InvalidTransition(
                f"{facility.reference} still owes {format_hkd(debt.total)} (principal "
                f"{format_hkd(debt.principal)}, interest {format_hkd(debt.interest)}, fees "
                f"{format_hkd(debt.fees)}); it can be closed once that is repaid.",
                code="facility_has_debt",
                details={"debt": debt.total},
            )
    before = facility.status
    facility.status = status
    facility.save(update_fields=["status"])
    MarginState.objects.filter(facility=facility).update(open=status != FacilityStatus.CLOSED)
    audit_event_record(
        actor=actor,
        action="facility.status_changed",
        target=facility,
        before={"status": before},
        after={"status": status, **({"reason": reason} if reason else {})},
    )
    return facility


# --- the facility limit: a four-eyes change -------------------------------------------------------------


def _facility_limit_clean(facility: Facility, proposed: dict[str, Any]) -> dict[str, Any]:
    if set(proposed) != {"limit"}:
        raise InvalidInput("A facility limit change proposes exactly one value: limit.")
    if facility.status == FacilityStatus.CLOSED:
        raise InvalidTransition(f"{facility.reference} is closed; its limit no longer changes.")
    limit = parse_hkd(proposed["limit"], field="limit", positive=True)
    if limit == facility.limit:
        raise InvalidInput(
            f"The limit of {facility.reference} is already {format_hkd(limit.amount)}.", code="no_change"
        )
    return {"limit": str(limit.amount)}


def _facility_limit_apply(*, target: Facility, proposed: dict[str, Any], actor: Actor, request) -> None:
    facility = lock_one(Facility, target.pk)
    before = snapshot(facility, ["limit"])
    facility.limit = Money(Decimal(proposed["limit"]), "HKD")
    validate_model(facility)
    facility.save(update_fields=["limit"])
    audit_event_record(
        actor=actor,
        action="facility.limit_changed",
        target=facility,
        before=before,
        after={**snapshot(facility, ["limit"]), "approval_request": request.pk},
    )


FACILITY_LIMIT_CHANGE = approval_kind_register(
    ApprovalKind(
        key="facility_limit",
        label="Facility limit change",
        model=Facility,
        request_permission="financing.change_facility",
        # The same second pair of eyes as a credit limit: a credit officer other than the one who asked.
        approve_permission="accounts.approve_credit_limit",
        clean=_facility_limit_clean,
        current=lambda facility: {"limit": str(facility.limit.amount)},
        apply=_facility_limit_apply,
        describe=lambda proposed: f"facility limit → HKD {Decimal(proposed['limit']):,.2f}",
    )
)


def facility_limit_change_request(
    *, facility: Facility, limit: Any, actor: Actor, reason: str = ""
) -> ApprovalRequest:
    """Ask for a new facility limit; it takes effect when a second credit officer approves it. A lower limit
    than the principal outstanding is allowed: it stops further drawdowns, it does not call the loan."""
    return approval_request_create(
        kind=FACILITY_LIMIT_CHANGE.key, target=facility, proposed={"limit": limit}, actor=actor, reason=reason
    )


def _drawdown_reads(
    facility: Facility, ledger_key: str | None, of_client: int | None
) -> tuple[Facility, FacilityRead, DrawdownLimits]:
    """Lock the facility, then the client's pool (the house order), then read the facility's live figures
    (``facility_read``) and what the checks need beyond them, with the drawdown already made with this key and
    the reference rows the posting needs (``drawdown_limits``). On PostgreSQL the pool's lock and both reads go
    in one round trip (``pool_lock_then``): each statement reads from its own snapshot, taken after the lock."""
    if not one_round_trip():
        facility, _ = facility_and_pool_lock(facility, of_client=of_client)
        return facility, facility_read(facility.pk), drawdown_limits(facility, idempotency_key=ledger_key)
    facility = facility_lock(facility, of_client=of_client)
    read_rows, limits_rows = pool_lock_then(
        facility.client_id,
        [
            facility_read_statement(facility.pk),
            drawdown_limits_query(facility, idempotency_key=ledger_key).query.sql_with_params(),
        ],
    )
    return facility, facility_read_of_rows(read_rows), drawdown_limits_of_row(limits_rows[0])


def _check_drawdown(
    facility: Facility, amount: Decimal, read: FacilityRead, limits: DrawdownLimits
) -> tuple[Decimal | None, Decimal]:
    """Every reason a drawdown may be refused, in the order a credit officer would ask, but the firm's own caps
    (``_check_firm_caps``, under the firm-wide lock). Returns the margin ratio after the drawdown and the
    client's loans before it. The debt, the valuation and the open margin call are read in one statement
    (``facility_read``); the open forced sale, the credit limit and the client's loans in another
    (``drawdown_limits``), both read by the caller (``_drawdown_reads``)."""
    client = facility.client
    if facility.status != FacilityStatus.ACTIVE:
        raise refusals.FacilityNotActive(
            _("%(facility)s is %(status)s.")
            % {"facility": facility.reference, "status": facility.get_status_display().lower()}
        )
    eligibility = client.eligibility()
    if not eligibility.eligible:
        raise refusals.NotEligible(
            _("%(client)s is not eligible for financing: %(reasons)s.")
            % {"client": client.name, "reasons": "; ".join(eligibility.reasons)},
            details={"reasons": list(eligibility.reasons)},
        )
    if read.open_margin_call_id is not None:
        call = MarginCall.objects.get(pk=read.open_margin_call_id)
        raise refusals.OpenMarginCall(
            _(
                "%(facility)s has an open margin call (#%(call)s, due %(deadline)s HKT); no new advances until it is cured."
            )
            % {
                "facility": facility.reference,
                "call": call.pk,
                "deadline": f"{call.deadline.astimezone(HONG_KONG):%Y-%m-%d %H:%M}",
            }
        )
    if limits.open_forced_sale_id is not None:
        raise refusals.OpenMarginCall(
            _("%(facility)s has a forced sale in progress (#%(sale)s); no new advances until it is done.")
            % {"facility": facility.reference, "sale": limits.open_forced_sale_id},
            code="forced_sale_in_progress",
        )
    valuation = read.valuation
    debt = valuation.debt
    if debt.principal + amount > facility.limit.amount:
        room = max(facility.limit.amount - debt.principal, ZERO)
        raise refusals.FacilityLimitExceeded(
            _(
                "A drawdown of %(amount)s would take the principal to %(principal)s, above the facility limit of "
                "%(limit)s; at most %(room)s can be drawn."
            )
            % {
                "amount": format_hkd(amount),
                "principal": format_hkd(debt.principal + amount),
                "limit": format_hkd(facility.limit.amount),
                "room": format_hkd(room),
            },
            details={"available": str(room)},
        )
    credit_limit, client_loans = limits.credit_limit, limits.client_loans
    if client_loans + amount > credit_limit:
        room = max(credit_limit - client_loans, ZERO)
        raise refusals.CreditLimitExceeded(
            _(
                "A drawdown of %(amount)s would take %(client)s's loans to %(loans)s, above the approved credit "
                "limit of %(limit)s; at most %(room)s can be drawn."
            )
            % {
                "amount": format_hkd(amount),
                "client": client.name,
                "loans": format_hkd(client_loans + amount),
                "limit": format_hkd(credit_limit),
                "room": format_hkd(room),
            },
            details={"available": str(room)},
        )
    debt_after = debt.total + amount
    max_advance = valuation.thresholds.max_advance
    if ratio_above(debt_after, valuation.margin_value, max_advance):
        raise refusals.MaxAdvanceExceeded(
            _(
                "A drawdown of %(amount)s would lift the margin ratio to %(ratio)s, above the max advance of "
                "%(max_advance)s; at most %(room)s can be drawn."
            )
            % {
                "amount": format_hkd(amount),
                "ratio": format_percent(margin_ratio(debt_after, valuation.margin_value)),
                "max_advance": format_percent(max_advance),
                "room": format_hkd(valuation.available_to_draw),
            },
            details={"available": str(valuation.available_to_draw)},
        )
    return margin_ratio(debt_after, valuation.margin_value), client_loans


def _check_firm_caps(client, client_loans: Decimal, amount: Decimal) -> None:
    """The firm-wide cap on margin loans, checked under the firm-wide lock (``firm_exposure_lock``, which reads
    the firm's loans in the same round trip) that the drawdown holds until it commits, so that every drawdown
    committed before is counted; then the per-client cap on the firm's capital."""
    firm_cap = settings.BROKER_CAPITAL_HKD * settings.FIRM_LOAN_TO_CAPITAL_MULTIPLE
    firm_loans = firm_exposure_lock(then=total_margin_loans_query()) or ZERO
    if firm_loans + amount > firm_cap:
        raise refusals.FirmLimitExceeded(
            _(
                "A drawdown of %(amount)s would take the firm's margin loans to %(loans)s, above %(multiple)s × "
                "capital (%(cap)s)."
            )
            % {
                "amount": format_hkd(amount),
                "loans": format_hkd(firm_loans + amount),
                "multiple": settings.FIRM_LOAN_TO_CAPITAL_MULTIPLE,
                "cap": format_hkd(firm_cap),
            }
        )
    client_cap = settings.BROKER_CAPITAL_HKD * settings.CLIENT_LOAN_SHARE_OF_CAPITAL
    if client_loans + amount > client_cap:
        raise refusals.ClientConcentrationExceeded(
            _(
                "A drawdown of %(amount)s would take %(client)s's loans to %(loans)s, above the firm's per-client "
                "cap of %(share)s of capital (%(cap)s)."
            )
            % {
                "amount": format_hkd(amount),
                "client": client.name,
                "loans": format_hkd(client_loans + amount),
                "share": format_percent(settings.CLIENT_LOAN_SHARE_OF_CAPITAL),
                "cap": format_hkd(client_cap),
            }
        )


@transaction.atomic
def drawdown_create(
    *,
    facility: Facility,
    amount: Any,
    actor: Actor,
    idempotency_key: str | None = None,
    of_client: int | None = None,
) -> Drawdown:
    """Lend cash against the pool. Refused, with the reason, when the client is not eligible, the
    facility has an open margin call, a facility, credit or firm-wide limit would be exceeded, or the
    margin ratio would go above max advance. Only ``facility``'s primary key is read: the facility is
    looked up by its lock (``Facility.DoesNotExist`` without it, or, with ``of_client``, when it is another
    client's: nothing is written)."""
    value = parse_hkd(amount, field="amount", positive=True).amount
    ledger_key = f"drawdown:{idempotency_key}" if idempotency_key else None
    # The facility and pool first, then every check of this facility alone, side by side with drawdowns on
    # other facilities. Then the ledger transaction's row, the drawdown's and the audit event, all before any
    # row every drawdown shares; the firm-wide row last, held from the firm-wide check to the commit, and the
    # legs after it, the last statement (they lock the firm's cash-settlement balance until the commit too).
    facility, read, limits = _drawdown_reads(facility, ledger_key, of_client)
    if limits.earlier_drawdown_id is not None:  # a retry: answered before any check, however things changed
        return Drawdown.objects.get(pk=limits.earlier_drawdown_id)
    ratio_after, client_loans = _check_drawdown(facility, value, read, limits)
    cash = (
        Account(
            pk=limits.cash_account_id,
            code=firm_account_code(AccountKind.CASH_SETTLEMENT),
            kind=AccountKind.CASH_SETTLEMENT,
        )
        if limits.cash_account_id is not None
        else firm_account(AccountKind.CASH_SETTLEMENT)
    )
    legs = [LegSpec(facility.principal_account, HKD, value), LegSpec(cash, HKD, -value)]
    created: list[Drawdown] = []

    def record_then_check_firm_caps(txn) -> None:
        created.append(
            Drawdown.objects.create(
                facility=facility,
                amount=Money(value, HKD),
                transaction=txn,
                margin_ratio_after=ratio_after,
                actor_label=txn.actor_label,
            )
        )
        audit_event_record(
            actor=actor,
            action="drawdown.created",
            target=facility,
            after={"amount": str(value), "margin_ratio_after": ratio_after, "transaction": txn.pk},
        )
        _check_firm_caps(facility.client, client_loans, value)  # takes the firm-wide row

    txn = transaction_post(
        kind=TransactionKind.DRAWDOWN,
        legs=legs,
        memo=f"Drawdown of {format_hkd(value)} on {facility.reference}",
        actor=actor,
        idempotency_key=ledger_key,
        before_legs=record_then_check_firm_caps,
        savepoint=False,  # this service's own covers it: what the posting raises goes through to it
        instrument_decimals=None if limits.hkd_decimals is None else {HKD: limits.hkd_decimals},
    )
    if not created:  # the same key, committed by a drawdown this one waited for (on the facility's lock)
        return Drawdown.objects.get(transaction=txn)
    return created[0]


@transaction.atomic
def repayment_create(
    *,
    facility: Facility,
    amount: Any,
    actor: Actor,
    idempotency_key: str | None = None,
    from_pool: bool = False,
) -> Repayment:
    """Cash received from the client: unpaid fees first, then interest, then principal. With ``from_pool``
    the cash is the HKD held in the client's collateral pool (sale proceeds): it leaves the pool and repays
    the debt in the same transaction."""
    value = parse_hkd(amount, field="amount", positive=True).amount
    if idempotency_key:
        earlier = Repayment.objects.filter(
            transaction__idempotency_key=f"repayment:{idempotency_key}"
        ).first()
        if earlier is not None:
            return earlier
    facility, pool = facility_and_pool_lock(facility)
    debt = facility_debt(facility)
    if value > debt.total:
        raise refusals.RepaymentRefused(
            _("A repayment of %(amount)s is more than the debt of %(debt)s on %(facility)s.")
            % {"amount": format_hkd(value), "debt": format_hkd(debt.total), "facility": facility.reference},
            details={"debt": str(debt.total)},
        )
    allocation = allocate_repayment(value, fees=debt.fees, interest=debt.interest, principal=debt.principal)
    legs = [LegSpec(firm_account(AccountKind.CASH_SETTLEMENT), HKD, value)]
    if from_pool:  # the cash leaves the pool (the ledger refuses more than it holds)
        legs += [
            LegSpec(pool.account, HKD, -value),
            LegSpec(firm_account(AccountKind.CUSTODY_CLEARING), HKD, value),
        ]
    for account, part in (
        (facility.fees_account, allocation.to_fees),
        (facility.interest_account, allocation.to_interest),
        (facility.principal_account, allocation.to_principal),
    ):
        if part:
            legs.append(LegSpec(account, HKD, -part))
    txn = transaction_post(
        kind=TransactionKind.REPAYMENT,
        legs=legs,
        memo=f"Repayment of {format_hkd(value)} on {facility.reference}"
        + (" from the pool" if from_pool else ""),
        actor=actor,
        idempotency_key=f"repayment:{idempotency_key}" if idempotency_key else None,
    )
    repayment = Repayment.objects.create(
        facility=facility,
        amount=Money(value, HKD),
        to_fees=Money(allocation.to_fees, HKD),
        to_interest=Money(allocation.to_interest, HKD),
        to_principal=Money(allocation.to_principal, HKD),
        transaction=txn,
        actor_label=txn.actor_label,
    )
    call = open_margin_call(facility)
    if call is not None:
        margin_call_reassess(call=call, actor=actor, cause=f"a repayment of {format_hkd(value)}")
    audit_event_record(
        actor=actor,
        action="repayment.created",
        target=facility,
        after={
            "amount": str(value),
            "to_fees": str(allocation.to_fees),
            "to_interest": str(allocation.to_interest),
            "to_principal": str(allocation.to_principal),
            "transaction": txn.pk,
        },
    )
    return repayment


@transaction.atomic
def collateral_top_up(
    *, pool: CollateralPool, asset: Asset, quantity: Any, actor: Actor, external_reference: str = ""
) -> CollateralMovement:
    """A deposit into the pool that also looks again at an open margin call at once: cured when the ratio is
    back at target, or the amount still due lowered. What the admin and the API use for deposits."""
    movement = collateral_deposit(
        pool=pool, asset=asset, quantity=quantity, actor=actor, external_reference=external_reference
    )
    facility = open_facility_of(pool.client)
    call = open_margin_call(facility) if facility is not None else None
    if call is not None:
        margin_call_reassess(
            call=call, actor=actor, cause=f"a top-up of {movement.quantity.normalize():f} {asset.symbol}"
        )
    return movement


@transaction.atomic
def collateral_withdraw(
    *, pool: CollateralPool, asset: Asset, quantity: Any, actor: Actor, external_reference: str = ""
) -> CollateralMovement:
    """Release collateral to the client. Refused when the pool does not hold it, or when it would lift
    the margin ratio of the client's facility above max advance."""
    amount = parse_quantity(asset, quantity)
    if external_reference:
        earlier = CollateralMovement.objects.filter(pool=pool, external_reference=external_reference).first()
        if earlier is not None:
            return earlier
    facility = open_facility_of(pool.client)
    if facility is not None:
        facility, locked_pool = facility_and_pool_lock(facility)
        pool = locked_pool or pool
    else:
        pool = lock_one(CollateralPool, pool.pk)
    holdings = pool_holdings(pool)
    held = holdings.get(asset.symbol, ZERO)
    if amount > held:
        raise refusals.WithdrawalRefused(
            _("The pool holds %(held)s %(asset)s; %(quantity)s cannot be withdrawn.")
            % {"held": f"{held.normalize():f}", "asset": asset.symbol, "quantity": f"{amount.normalize():f}"},
            code="insufficient_holdings",
        )
    if facility is not None:
        after = {**holdings, asset.symbol: held - amount}
        valuation = valuation_for_holdings(facility, after)
        if ratio_above(valuation.debt.total, valuation.margin_value, valuation.thresholds.max_advance):
            raise refusals.WithdrawalRefused(
                _(
                    "Withdrawing %(quantity)s %(asset)s would lift the margin ratio of %(facility)s to %(ratio)s, "
                    "above the max advance of %(max_advance)s."
                )
                % {
                    "quantity": f"{amount.normalize():f}",
                    "asset": asset.symbol,
                    "facility": facility.reference,
                    "ratio": format_percent(valuation.margin_ratio),
                    "max_advance": format_percent(valuation.thresholds.max_advance),
                },
                code="max_advance_exceeded",
            )
    return collateral_movement_post(
        pool=pool,
        asset=asset,
        amount=amount,
        kind=MovementKind.WITHDRAWAL,
        actor=actor,
        external_reference=external_reference,
    )


@transaction.atomic
def fee_charge(*, facility: Facility, amount: Any, description: str, actor: Actor):
    value = parse_hkd(amount, field="amount", positive=True).amount
    facility = lock_one(Facility, facility.pk)
    txn = transaction_post(
        kind=TransactionKind.FEE,
        legs=[
            LegSpec(facility.fees_account, HKD, value),
            LegSpec(firm_account(AccountKind.FEE_INCOME), HKD, -value),
        ],
        memo=f"{description} on {facility.reference}",
        actor=actor,
    )
    audit_event_record(
        actor=actor,
        action="fee.charged",
        target=facility,
        after={"amount": str(value), "description": description},
    )
    return txn
