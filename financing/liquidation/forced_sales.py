"""Forced sales: selling just enough collateral, at fair prices, exactly once, and accounting for every
cent, one idempotent step at a time (docs/forced-sales-and-top-ups.md)."""

from __future__ import annotations

import datetime
import logging
from decimal import ROUND_FLOOR, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.audit import SYSTEM, Actor, AuditSpec, actor_user, audit_events_record
from collateral.calculations import WIDE, forced_sale_plan
from collateral.enums import AssetKind
from collateral.models import Asset, CollateralPool, CurrentPrice
from collateral.selectors import (
    fx_rates_latest,
    fx_to_hkd,
    pool_holdings,
    position_inputs,
    price_doubts,
    price_freshness,
)
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from core.locks import lock_one
from core.money import CENT, HKD, format_hkd, format_percent
from core.parsing import parse_amount
from core.tasks import task_queue_on_commit
from financing.enums import (
    FORCED_SALE_TRANSITIONS,
    OPEN_FORCED_SALE_STATUSES,
    OPEN_SALE_ORDER_STATUSES,
    ForcedSaleStatus,
    PauseReason,
    SaleOrderStatus,
    SaleRoute,
)
from financing.lending.services import repayment_create
from financing.liquidation.kill_switch import kill_switch
from financing.liquidation.venues import VENUE_ERRORS, SaleVenue, VenueOrder
from financing.models import Facility, ForcedSale, SaleFill, SaleOrder
from financing.selectors import facility_debt, facility_pool, facility_valuation, policy_for
from ledger.enums import AccountKind, TransactionKind
from ledger.services import LegSpec, firm_account, transaction_post
from notifications.services import EventSpec, events_record

logger = logging.getLogger(__name__)


AUTO_RESUMING = (PauseReason.KILL_SWITCH, PauseReason.STALE_PRICE, PauseReason.UNCONFIRMED_PRICE)
RESUMED_WORDS = {
    PauseReason.KILL_SWITCH: "kill switch lifted",
    PauseReason.STALE_PRICE: "prices fresh again",
    PauseReason.UNCONFIRMED_PRICE: "no price or rate awaits confirmation any more",
}


def quantity_words(quantity: Decimal, symbol: str) -> str:
    return f"{quantity.normalize():f} {symbol}"


def _tell(
    sale: ForcedSale, type: str, summary: str, payload: dict | None = None, *, client: bool = True
) -> None:
    events_record(
        [
            EventSpec(
                type=type,
                summary=summary,
                payload={
                    "forced_sale": sale.pk,
                    "facility": sale.facility.reference,
                    "status": sale.status,
                    **(payload or {}),
                },
                client=sale.facility.client,
                subject=sale,
                notify_client=client,
            )
        ]
    )


def _move(sale: ForcedSale, status: str, actor: Actor, reason: str = "", pause: str = "") -> None:
    """Change a sale's status (audited, told to client and staff)."""
    if status == sale.status and pause == sale.pause_reason:
        return
    if status != sale.status and status not in FORCED_SALE_TRANSITIONS[sale.status]:
        raise InvalidTransition(
            f"Forced sale #{sale.pk} is {sale.get_status_display().lower()}; it cannot become {status}."
        )
    before = sale.status
    sale.status, sale.status_reason, sale.pause_reason = status, reason[:300], pause
    if status in (ForcedSaleStatus.FILLED, ForcedSaleStatus.FAILED, ForcedSaleStatus.CANCELLED):
        sale.closed_at = timezone.now()
    sale.save(update_fields=["status", "status_reason", "pause_reason", "closed_at"])
    audit_events_record(
        [
            AuditSpec(
                actor,
                f"forced_sale.{status}",
                sale,
                before={"status": before},
                after={"status": status, "reason": reason},
            )
        ]
    )
    words = ForcedSaleStatus(status).label.lower()
    _tell(
        sale,
        f"forced_sale.{status}",
        f"Forced sale #{sale.pk} on {sale.facility.reference} {words}" + (f": {reason}" if reason else ""),
        {"reason": reason},
    )


@transaction.atomic
def forced_sale_approve(*, sale: ForcedSale, actor: Actor) -> ForcedSale:
    """Release a sale the policy holds for staff approval."""
    user = actor_user(actor)
    if user is None or not user.has_perm("financing.approve_forcedsale"):
        raise PermissionRefused("Only risk officers may approve a forced sale.")
    sale = lock_one(ForcedSale, sale.pk)
    if sale.status != ForcedSaleStatus.AWAITING_APPROVAL:
        raise InvalidTransition(
            f"Forced sale #{sale.pk} is {sale.get_status_display().lower()}, not awaiting approval."
        )
    sale.approved_by, sale.approved_at = user, timezone.now()
    sale.save(update_fields=["approved_by", "approved_at"])
    _move(sale, ForcedSaleStatus.SUBMITTED, actor, f"approved by {user.username}")
    _queue(sale.pk)
    return sale


@transaction.atomic
def forced_sale_resume(*, sale: ForcedSale, actor: Actor) -> ForcedSale:
    """Staff let a sale paused for a bad fill price or a failing venue continue (after looking at it)."""
    user = actor_user(actor)
    if user is None or not user.has_perm("financing.approve_forcedsale"):
        raise PermissionRefused("Only risk officers may resume a forced sale.")
    sale = lock_one(ForcedSale, sale.pk)
    if sale.status != ForcedSaleStatus.PAUSED:
        raise InvalidTransition(f"Forced sale #{sale.pk} is not paused.")
    if sale.pause_reason in AUTO_RESUMING:
        raise InvalidTransition(
            f"Forced sale #{sale.pk} is paused because of: {sale.get_pause_reason_display().lower()}; it resumes by itself "
            "when that is over."
        )
    SaleOrder.objects.filter(forced_sale=sale, status__in=OPEN_SALE_ORDER_STATUSES).update(errors=0)
    _move(sale, ForcedSaleStatus.SUBMITTED, actor, f"resumed by {user.username}")
    _queue(sale.pk)
    return sale


PAUSABLE_BY_STAFF = (ForcedSaleStatus.SUBMITTED, ForcedSaleStatus.PARTIALLY_FILLED)


@transaction.atomic
def forced_sale_pause(
    *, sale: ForcedSale, actor: Actor, reason: str, venue: SaleVenue | None = None
) -> ForcedSale:
    """A risk officer stops a running sale to look at it: its open orders are cancelled (fills that arrived
    meanwhile are kept) and it waits, paused by staff, until a risk officer resumes it (``forced_sale_resume``
    plans again from what the pool holds then)."""
    user = actor_user(actor)
    if user is None or not user.has_perm("financing.approve_forcedsale"):
        raise PermissionRefused("Only risk officers may pause a forced sale.")
    if not reason.strip():
        raise InvalidInput("Say why the sale is paused.")
    facility = lock_one(Facility, sale.facility_id)
    pool = facility_pool(facility)
    if pool is not None:
        lock_one(CollateralPool, pool.pk)
    sale = lock_one(ForcedSale, sale.pk)
    sale.facility = facility
    if sale.status not in PAUSABLE_BY_STAFF:
        raise InvalidTransition(
            f"Forced sale #{sale.pk} is {sale.get_status_display().lower()}: only a submitted or partly filled "
            "sale can be paused."
        )
    has_venue_orders = sale.orders.filter(route=SaleRoute.VENUE, status__in=OPEN_SALE_ORDER_STATUSES).exists()
    _stop_open_orders(sale, venue or (SaleVenue() if has_venue_orders else None), actor)
    if sale.status in PAUSABLE_BY_STAFF:  # not filled by what arrived while its orders were cancelled
        _move(sale, ForcedSaleStatus.PAUSED, actor, f"paused by {user.username}: {reason}", PauseReason.STAFF)
    return sale


def _client_order_id(sale: ForcedSale, number: int) -> str:
    return f"FS{sale.pk}-{number}"


def _prices_in_doubt(sale: ForcedSale, symbols, actor: Actor, venue: SaleVenue | None = None) -> bool:
    """Re-check every price and rate the sale of ``symbols`` depends on, just before orders go out: when a
    stale one or one in doubt (``price_doubts``) is found, stop what is open and pause the sale with the
    reason. Returns whether it paused."""
    assets = list(Asset.objects.filter(pk__in=list(symbols)))
    stale = {}
    for asset in assets:
        freshness = price_freshness(asset)
        if not freshness.is_fresh:
            stale[asset.symbol] = freshness.reason
    doubts = price_doubts(assets)
    if not stale and not doubts:
        return False
    _stop_open_orders(sale, venue, actor)
    if stale:
        reason = "; ".join(f"{symbol}: {why}" for symbol, why in sorted(stale.items()))
        _move(
            sale,
            ForcedSaleStatus.PAUSED,
            actor,
            f"waiting for fresh prices ({reason})",
            PauseReason.STALE_PRICE,
        )
    else:
        reason = "; ".join(f"{symbol}: {why}" for symbol, why in sorted(doubts.items()))
        _move(
            sale,
            ForcedSaleStatus.PAUSED,
            actor,
            f"waiting for a second person to confirm or reject a held price ({reason})",
            PauseReason.UNCONFIRMED_PRICE,
        )
    return True


def _remember_prices_planned_on(sale: ForcedSale, holdings: dict[str, Decimal]) -> None:
    """Link the sale to the prices and FX rates its plan was made on, so that it can always be explained."""
    sale.planned_on_prices.add(
        *CurrentPrice.objects.filter(asset_id__in=list(holdings)).values_list("price_id", flat=True)
    )
    sale.planned_on_fx_rates.add(*(rate.pk for rate in fx_rates_latest().values()))


def _plan(sale: ForcedSale, facility: Facility, pool: CollateralPool, actor: Actor) -> None:
    """Size what is still to be sold and create its orders (or finish the sale when nothing is left)."""
    policy = policy_for(facility)
    holdings = pool_holdings(pool)
    sellable = {s: q for s, q in holdings.items() if q > 0}
    if _prices_in_doubt(sale, sellable, actor):
        return
    debt = facility_debt(facility).total
    positions = position_inputs(sellable)
    # Cash in the pool repays the debt first: it is the proceeds of earlier fills, or the client's own.
    cash = sellable.get(HKD, Decimal(0))
    if cash > 0 and debt > 0:
        repayment_create(facility=facility, amount=min(cash, debt), actor=actor, from_pool=True)
        debt = facility_debt(facility).total
        sellable = {s: q for s, q in pool_holdings(pool).items() if q > 0}
        positions = position_inputs(sellable)
    positions = [p for p in positions if p.kind != AssetKind.CASH]
    plan = forced_sale_plan(
        positions,
        debt=debt,
        target=policy.target,
        sale_cost=policy.sale_cost_rate,
        order=policy.sale_order or None,
    )
    valuation = facility_valuation(facility)
    sale.plan = {
        "debt": debt,
        "margin_value": valuation.margin_value,
        "margin_ratio": valuation.margin_ratio,
        "target": policy.target,
        "sales": [
            {
                "asset": s.symbol,
                "quantity": s.quantity,
                "market_value": s.market_value,
                "proceeds": s.proceeds,
            }
            for s in plan.sales
        ],
        "ratio_after": plan.ratio_after,
        "shortfall": plan.shortfall,
    }
    sale.planned_at = timezone.now()
    if not sale.first_plan:
        sale.first_plan = {**sale.plan, "planned_at": sale.planned_at}
    sale.save(update_fields=["plan", "first_plan", "planned_at"])
    _remember_prices_planned_on(sale, holdings)
    if not plan.sales:
        # Nothing (more) to sell: either the ratio is back at target, or the pool is gone.
        if debt > 0 and plan.shortfall > 0:
            _record_shortfall(sale, plan.shortfall, actor)
            reason = f"the whole pool is sold; {format_hkd(plan.shortfall)} of debt remains unsecured"
        else:
            reason = (
                f"margin ratio {format_percent(valuation.margin_ratio)} is at or below the target of "
                f"{format_percent(policy.target)}"
            )
        sold = SaleFill.objects.filter(order__forced_sale=sale).exists()
        _move(
            sale,
            ForcedSaleStatus.FILLED if sold or plan.shortfall else ForcedSaleStatus.CANCELLED,
            actor,
            reason,
        )
        return
    if plan.shortfall > 0:
        _record_shortfall(sale, plan.shortfall, actor)
    venue_markets = settings.FORCED_SALE_VENUE.get("markets", {})
    prices = {p.symbol: p for p in positions}
    band = settings.FORCED_SALE_PRICE_BAND
    number = sale.orders.count()
    orders = []
    for planned in plan.sales:
        asset = Asset.objects.get(pk=planned.symbol)
        number += 1
        route = SaleRoute.VENUE if asset.kind == AssetKind.CRYPTO else SaleRoute.BROKER
        if route == SaleRoute.VENUE and planned.symbol not in venue_markets:
            _move(
                sale,
                ForcedSaleStatus.PAUSED,
                actor,
                f"the sale venue has no market for {planned.symbol}",
                PauseReason.VENUE_ERRORS,
            )
            return
        reference = prices[planned.symbol].price
        orders.append(
            SaleOrder(
                forced_sale=sale,
                asset=asset,
                route=route,
                venue=settings.FORCED_SALE_VENUE["name"]
                if route == SaleRoute.VENUE
                else "broker order system",
                quantity=planned.quantity,
                client_order_id=_client_order_id(sale, number),
                reference_price=reference,
                limit_price=(reference * (1 - band)).quantize(Decimal("0.0000000001"), rounding=ROUND_FLOOR),
                price_currency=asset.currency,
            )
        )
    SaleOrder.objects.bulk_create(orders)
    audit_events_record(
        [
            AuditSpec(
                actor,
                "forced_sale.planned",
                sale,
                after={
                    "orders": [(o.client_order_id, o.asset_id, o.quantity) for o in orders],
                    "plan": sale.plan,
                },
            )
        ]
    )
    _tell(
        sale,
        "forced_sale.planned",
        f"Forced sale #{sale.pk} on {sale.facility.reference}: selling "
        + ", ".join(quantity_words(o.quantity, o.asset_id) for o in orders)
        + f" to bring the ratio from {format_percent(valuation.margin_ratio)} to {format_percent(policy.target)}",
        {
            "orders": [
                {
                    "client_order_id": o.client_order_id,
                    "asset": o.asset_id,
                    "quantity": o.quantity,
                    "limit_price": o.limit_price,
                }
                for o in orders
            ]
        },
    )
    if policy.requires_sale_approval and sale.approved_at is None:
        _move(
            sale,
            ForcedSaleStatus.AWAITING_APPROVAL,
            actor,
            "the policy requires staff approval before a sale is submitted",
        )
        return
    if sale.status != ForcedSaleStatus.PARTIALLY_FILLED:
        _move(sale, ForcedSaleStatus.SUBMITTED, actor)
    _send_broker_orders(sale, [o for o in orders if o.route == SaleRoute.BROKER], actor)


def _record_shortfall(sale: ForcedSale, amount: Decimal, actor: Actor) -> None:
    amount = amount.quantize(CENT)
    if amount <= 0 or amount == sale.shortfall:
        return
    sale.shortfall = amount
    sale.save(update_fields=["shortfall"])
    audit_events_record([AuditSpec(actor, "forced_sale.shortfall", sale, after={"shortfall": amount})])
    _tell(
        sale,
        "forced_sale.shortfall",
        f"Forced sale #{sale.pk} on {sale.facility.reference}: the whole pool does not cover the debt; "
        f"{format_hkd(amount)} will remain unsecured and needs a decision by staff",
        {"shortfall": amount},
    )


def _send_broker_orders(sale: ForcedSale, orders: list[SaleOrder], actor: Actor) -> None:
    """Securities go to the broker's order system through the outbox; its fills come back later."""
    now = timezone.now()
    for order in orders:
        order.status, order.placed_at = SaleOrderStatus.OPEN, now
        order.save(update_fields=["status", "placed_at"])
        _tell(
            sale,
            "forced_sale.order",
            f"Sell order {order.client_order_id}: {quantity_words(order.quantity, order.asset_id)} at {order.limit_price} "
            f"{order.price_currency} or better",
            {
                "client_order_id": order.client_order_id,
                "asset": order.asset_id,
                "side": "sell",
                "quantity": order.quantity,
                "limit_price": order.limit_price,
                "currency": order.price_currency,
            },
            client=False,
        )


def _post_fill(
    order: SaleOrder, fill_key: str, quantity: Decimal, cost: Decimal, fee: Decimal, actor: Actor
) -> SaleFill | None:
    """Book one fill: the asset leaves the pool, the net proceeds (in HKD) come in as cash and repay the
    debt. Recorded once per ``fill_key``."""
    if SaleFill.objects.filter(order=order, fill_key=fill_key).exists():
        return None
    sale = order.forced_sale
    facility = sale.facility
    pool = facility_pool(facility)
    currency = order.price_currency
    gross = cost.quantize(CENT, rounding=ROUND_HALF_UP)  # what the venue pays, to its cent
    fee = fee.quantize(CENT, rounding=ROUND_UP)  # what it charges, never under-recorded
    net = gross - fee
    with localcontext(prec=WIDE):
        price = (cost / quantity).quantize(Decimal("0.0000000001"))
        rate = Decimal(1) if currency == HKD else fx_to_hkd().get(currency)
        if rate is None:
            raise InvalidInput(f"There is no {currency}/HKD rate to convert the proceeds.")
        net_hkd = (net * rate).quantize(CENT, rounding=ROUND_FLOOR)
    market = firm_account(AccountKind.MARKET)
    legs = [LegSpec(pool.account, order.asset_id, -quantity), LegSpec(market, order.asset_id, quantity)]
    if currency == HKD:
        legs += [LegSpec(market, HKD, -gross), LegSpec(pool.account, HKD, net)]
        if fee:
            legs.append(LegSpec(firm_account(AccountKind.SALE_COSTS), HKD, fee))
    else:
        fx = firm_account(AccountKind.FX_MARKET)
        legs += [
            LegSpec(market, currency, -gross),
            LegSpec(fx, currency, net),
            LegSpec(fx, HKD, -net_hkd),
            LegSpec(pool.account, HKD, net_hkd),
        ]
        if fee:
            legs.append(LegSpec(firm_account(AccountKind.SALE_COSTS), currency, fee))
    txn = transaction_post(
        kind=TransactionKind.SALE,
        legs=[leg for leg in legs if leg.amount],
        memo=f"Forced sale #{sale.pk}: {quantity_words(quantity, order.asset_id)} at {price} {currency} ({order.client_order_id})",
        actor=actor,
        idempotency_key=f"sale-fill:{order.pk}:{fill_key}",
    )
    fill = SaleFill.objects.create(
        order=order,
        fill_key=fill_key,
        quantity=quantity,
        price=price,
        fee=fee,
        proceeds=net_hkd,
        transaction=txn,
    )
    order.filled_quantity += quantity
    order.filled_cost += cost
    order.fees += fee
    order.save(update_fields=["filled_quantity", "filled_cost", "fees"])
    sale.proceeds += net_hkd
    sale.save(update_fields=["proceeds"])
    debt = facility_debt(facility).total
    repaid = min(net_hkd, debt)
    if repaid > 0:
        repayment_create(facility=facility, amount=repaid, actor=actor, from_pool=True)
    audit_events_record(
        [
            AuditSpec(
                actor,
                "forced_sale.filled_part",
                sale,
                after={
                    "order": order.client_order_id,
                    "quantity": quantity,
                    "price": price,
                    "fee": fee,
                    "proceeds": net_hkd,
                    "repaid": repaid,
                },
            )
        ]
    )
    _tell(
        sale,
        "forced_sale.fill",
        f"Forced sale #{sale.pk}: sold {quantity_words(quantity, order.asset_id)} at {price} {currency}; "
        f"{format_hkd(net_hkd)} after fees, {format_hkd(repaid)} repaid",
        {
            "order": order.client_order_id,
            "asset": order.asset_id,
            "quantity": quantity,
            "price": price,
            "fee": fee,
            "proceeds": net_hkd,
            "repaid": repaid,
        },
    )
    if sale.status == ForcedSaleStatus.SUBMITTED:
        _move(sale, ForcedSaleStatus.PARTIALLY_FILLED, actor)
    return fill


def _outside_band(order: SaleOrder, quantity: Decimal, cost: Decimal) -> bool:
    if order.reference_price is None or quantity <= 0:
        return False
    with localcontext(prec=WIDE):
        floor = order.reference_price * (1 - settings.FORCED_SALE_PRICE_BAND)
        return cost / quantity < floor


@transaction.atomic
def sale_fill_record(
    *, order: SaleOrder, fill_key: str, quantity: Any, price: Any, fee: Any = "0", actor: Actor
) -> SaleFill:
    """A fill of a securities order reported by the broker's order system (API or admin). Recorded once per
    ``fill_key``; a quantity above what is left, or a sale that is closed, is refused."""
    sale = ForcedSale.objects.get(pk=order.forced_sale_id)
    facility = lock_one(Facility, sale.facility_id)
    pool = facility_pool(facility)
    lock_one(CollateralPool, pool.pk)
    sale = lock_one(ForcedSale, sale.pk)
    order = lock_one(SaleOrder, order.pk)
    if not fill_key.strip():
        raise InvalidInput("A fill needs the order system's id for it (fill_key).")
    earlier = SaleFill.objects.filter(order=order, fill_key=fill_key).first()
    if earlier is not None:
        return earlier
    if order.route != SaleRoute.BROKER:
        raise InvalidInput(
            f"Order {order.client_order_id} is sold at a crypto venue; its fills come from the venue."
        )
    if order.status != SaleOrderStatus.OPEN:
        raise InvalidTransition(
            f"Order {order.client_order_id} is {order.get_status_display().lower()}; it takes no fills."
        )
    asset = order.asset
    quantity = parse_amount(
        quantity, field="quantity", positive=True, decimals=asset.decimals, unit=asset.symbol
    )
    price = parse_amount(price, field="price", positive=True, decimals=10)
    fee = parse_amount(fee, field="fee", decimals=2)
    if quantity > order.remaining:
        raise InvalidInput(
            f"Order {order.client_order_id} has {quantity_words(order.remaining, asset.symbol)} left; a fill of "
            f"{quantity_words(quantity, asset.symbol)} is more than that.",
            code="overfill",
        )
    with localcontext(prec=WIDE):
        cost = quantity * price
    fill = _post_fill(order, fill_key, quantity, cost, fee, actor)
    if order.remaining == 0:
        order.status, order.closed_at = SaleOrderStatus.FILLED, timezone.now()
        order.save(update_fields=["status", "closed_at"])
    if _outside_band(order, quantity, cost):
        _pause_for_band(sale, order, price, actor)
    _queue(sale.pk)
    return fill


def _pause_for_band(sale: ForcedSale, order: SaleOrder, price: Decimal, actor: Actor) -> None:
    reason = (
        f"{order.client_order_id} filled at {price} {order.price_currency}, more than "
        f"{format_percent(settings.FORCED_SALE_PRICE_BAND)} below the oracle price of {order.reference_price}"
    )
    _move(sale, ForcedSaleStatus.PAUSED, actor, reason, PauseReason.PRICE_BAND)


def _queue(sale_id: int) -> None:
    task_queue_on_commit("financing.forced_sale_step", sale_id)


def _follow_venue_order(sale: ForcedSale, order: SaleOrder, venue: SaleVenue, actor: Actor) -> None:
    """Place a venue order if nothing is at the venue under its client id yet, otherwise follow it:
    record new fills, re-price when it stalls, stop when it is done."""
    symbol = order.asset_id
    try:
        found = venue.find(symbol, order.client_order_id) if order.status != SaleOrderStatus.OPEN else None
        if order.status != SaleOrderStatus.OPEN:
            if found is None:
                order.status = SaleOrderStatus.PLACING
                order.save(update_fields=["status"])
                found = venue.place(symbol, order.quantity, order.limit_price, order.client_order_id)
            order.venue_order_id, order.status, order.placed_at = (
                found.id,
                SaleOrderStatus.OPEN,
                order.placed_at or timezone.now(),
            )
            order.errors = 0
            order.save(update_fields=["venue_order_id", "status", "placed_at", "errors"])
        state: VenueOrder = venue.fetch(symbol, order.venue_order_id, order.client_order_id)
        stalled = (
            not state.is_done
            and order.placed_at is not None
            and timezone.now() - order.placed_at
            > datetime.timedelta(seconds=settings.FORCED_SALE_REPRICE_SECONDS)
        )
        if stalled:
            venue.cancel(symbol, order.venue_order_id)
            state = venue.fetch(symbol, order.venue_order_id, order.client_order_id)
    except VENUE_ERRORS as error:
        order.errors += 1
        order.last_error = f"{type(error).__name__}: {error}"[:2000]
        order.save(update_fields=["errors", "last_error"])
        logger.warning(
            "forced sale %s order %s: venue error %s (%s in a row)",
            sale.pk,
            order.client_order_id,
            order.last_error,
            order.errors,
        )
        if order.errors >= settings.FORCED_SALE_MAX_VENUE_ERRORS:
            _move(
                sale,
                ForcedSaleStatus.PAUSED,
                actor,
                f"{order.venue} failed {order.errors} times in a row: {order.last_error}",
                PauseReason.VENUE_ERRORS,
            )
        return
    delta_quantity = state.filled - order.filled_quantity
    if delta_quantity > 0:
        delta_cost = state.cost - order.filled_cost
        delta_fee = state.fee - order.fees
        _post_fill(
            order, f"{state.id}:{state.filled}", delta_quantity, delta_cost, max(delta_fee, Decimal(0)), actor
        )
        if _outside_band(order, delta_quantity, delta_cost):
            with localcontext(prec=WIDE):
                _pause_for_band(sale, order, (delta_cost / delta_quantity).quantize(Decimal("0.01")), actor)
            if not state.is_done:
                try:
                    venue.cancel(symbol, order.venue_order_id)
                except VENUE_ERRORS:
                    logger.exception(
                        "could not cancel %s after a fill outside the band", order.client_order_id
                    )
    if state.is_done:
        order.status = SaleOrderStatus.FILLED if order.remaining == 0 else SaleOrderStatus.CANCELLED
        order.closed_at = timezone.now()
        order.save(update_fields=["status", "closed_at"])


def _stop_open_orders(sale: ForcedSale, venue: SaleVenue | None, actor: Actor) -> None:
    """Cancel what is still working (a pause): venue orders at the venue, broker orders by telling the
    order system. Fills that arrived meanwhile are kept."""
    for order in sale.orders.filter(status__in=OPEN_SALE_ORDER_STATUSES):
        if order.route == SaleRoute.VENUE and order.venue_order_id and venue is not None:
            try:
                venue.cancel(order.asset_id, order.venue_order_id)
                state = venue.fetch(order.asset_id, order.venue_order_id, order.client_order_id)
            except VENUE_ERRORS:
                logger.exception("could not cancel %s; the next step tries again", order.client_order_id)
                continue
            if state.filled > order.filled_quantity:
                _post_fill(
                    order,
                    f"{state.id}:{state.filled}",
                    state.filled - order.filled_quantity,
                    state.cost - order.filled_cost,
                    max(state.fee - order.fees, Decimal(0)),
                    actor,
                )
        elif order.route == SaleRoute.BROKER and order.status == SaleOrderStatus.OPEN:
            _tell(
                sale,
                "forced_sale.order_cancel",
                f"Cancel sell order {order.client_order_id}",
                {"client_order_id": order.client_order_id},
                client=False,
            )
        order.status, order.closed_at = SaleOrderStatus.CANCELLED, timezone.now()
        order.save(update_fields=["status", "closed_at"])


def forced_sale_step(*, sale_id: int, actor: Actor = SYSTEM, venue: SaleVenue | None = None) -> str:
    """Take one forced sale one step further. Returns its status afterwards, or "busy" when another run
    holds it."""
    with transaction.atomic():
        sale = ForcedSale.objects.select_related("facility__client").get(pk=sale_id)
        if sale.status not in OPEN_FORCED_SALE_STATUSES:
            return sale.status
        facility = lock_one(Facility, sale.facility_id)
        pool = facility_pool(facility)
        pool = lock_one(CollateralPool, pool.pk)
        locked = list(ForcedSale.objects.select_for_update(skip_locked=True).filter(pk=sale_id))
        if not locked:
            return "busy"
        sale = locked[0]
        sale.facility = facility
        has_venue_orders = sale.orders.filter(
            route=SaleRoute.VENUE, status__in=OPEN_SALE_ORDER_STATUSES
        ).exists()
        venue = venue or (
            SaleVenue() if has_venue_orders or sale.status == ForcedSaleStatus.PLANNED else None
        )

        if kill_switch().engaged:
            if sale.status != ForcedSaleStatus.PAUSED or sale.pause_reason != PauseReason.KILL_SWITCH:
                _stop_open_orders(sale, venue, actor)
                _move(
                    sale,
                    ForcedSaleStatus.PAUSED,
                    actor,
                    f"kill switch engaged: {kill_switch().reason}",
                    PauseReason.KILL_SWITCH,
                )
            return sale.status
        open_orders = list(sale.orders.filter(status__in=OPEN_SALE_ORDER_STATUSES).select_related("asset"))
        if _prices_in_doubt(sale, {o.asset_id for o in open_orders}, actor, venue):
            return sale.status
        if sale.status == ForcedSaleStatus.PAUSED:
            if sale.pause_reason not in AUTO_RESUMING:
                return sale.status  # a person has to look at it first
            if sale.pause_reason != PauseReason.KILL_SWITCH and _prices_in_doubt(
                sale, {s for s, q in pool_holdings(pool).items() if q > 0}, actor
            ):
                return sale.status  # still waiting: not resumed only to pause again
            resumed = (
                ForcedSaleStatus.PARTIALLY_FILLED
                if SaleFill.objects.filter(order__forced_sale=sale).exists()
                else ForcedSaleStatus.PLANNED
            )
            _move(sale, resumed, actor, f"resumed: {RESUMED_WORDS[sale.pause_reason]}")
        if sale.status == ForcedSaleStatus.AWAITING_APPROVAL:
            return sale.status
        if not open_orders:
            _plan(sale, facility, pool, actor)
            if sale.status not in (ForcedSaleStatus.SUBMITTED, ForcedSaleStatus.PARTIALLY_FILLED):
                return sale.status
            open_orders = list(
                sale.orders.filter(status__in=OPEN_SALE_ORDER_STATUSES).select_related("asset")
            )
        for order in open_orders:
            if order.route == SaleRoute.VENUE:
                venue = venue or SaleVenue()
                _follow_venue_order(sale, order, venue, actor)
                if sale.status == ForcedSaleStatus.PAUSED:
                    break
        if (
            sale.status in (ForcedSaleStatus.SUBMITTED, ForcedSaleStatus.PARTIALLY_FILLED)
            and not sale.orders.filter(status__in=OPEN_SALE_ORDER_STATUSES).exists()
        ):
            _plan(
                sale, facility, pool, actor
            )  # what the fills left to do, if anything: the sale finishes here
        return sale.status


def forced_sales_step_all(*, actor: Actor = SYSTEM) -> dict[str, int]:
    """One step for every open sale, each in its own transaction; one failing does not stop the others."""
    results: dict[str, int] = {}
    for sale_id in (
        ForcedSale.objects.filter(status__in=OPEN_FORCED_SALE_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    ):
        try:
            status = forced_sale_step(sale_id=sale_id, actor=actor)
        except Exception:
            logger.exception("forced sale %s: the step failed; the next run tries again", sale_id)
            status = "error"
        results[status] = results.get(status, 0) + 1
    return results
