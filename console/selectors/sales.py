"""The forced sales page: each sale with its plan as first made, its orders and fills, the slippage of
each order against the oracle price it was placed on, and the ratio before and after; the kill switch."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db.models import Case, IntegerField, Value, When

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest
from financing.enums import OPEN_FORCED_SALE_STATUSES
from financing.liquidation.kill_switch import kill_switch
from financing.models import ForcedSale, KillSwitch, RatioSnapshot, SaleOrder
from financing.selectors import StoredPlan, stored_plan

SALES_SHOWN = 50


@dataclass(frozen=True)
class OrderRow:
    order: SaleOrder
    average_price: Decimal | None
    slippage: Decimal | None  # average fill price against the oracle price when placed: −0.01 is 1% below
    fills: list


@dataclass(frozen=True)
class SaleCard:
    sale: ForcedSale
    first_plan: StoredPlan | None
    orders: list[OrderRow]
    ratio_before: Decimal | None
    ratio_after: Decimal | None  # after it closed: the first ratio the sweep kept then; open: None


@dataclass(frozen=True)
class SalesPage:
    sales: list[SaleCard]
    kill_switch: KillSwitch
    lift_request: ApprovalRequest | None


def order_row(order: SaleOrder) -> OrderRow:
    average = None
    slippage = None
    if order.filled_quantity:
        average = order.filled_cost / order.filled_quantity
        if order.reference_price:
            slippage = average / order.reference_price - 1
    return OrderRow(order, average, slippage, list(order.fills.all()))


def _ratio_after(sale: ForcedSale) -> Decimal | None:
    if sale.closed_at is None:
        return None
    return (
        RatioSnapshot.objects.filter(facility_id=sale.facility_id, taken_at__gte=sale.closed_at)
        .order_by("taken_at", "pk")
        .values_list("margin_ratio", flat=True)
        .first()
    )


def sale_card(sale: ForcedSale) -> SaleCard:
    plan = stored_plan(sale.first_plan)
    orders = [order_row(order) for order in sale.orders.select_related("asset").prefetch_related("fills")]
    before = (
        sale.ratio_at_request if sale.ratio_at_request is not None else (plan.margin_ratio if plan else None)
    )
    return SaleCard(sale, plan, orders, before, _ratio_after(sale))


def pending_kill_switch_lift() -> ApprovalRequest | None:
    return (
        ApprovalRequest.objects.filter(
            kind="kill_switch_lift",
            target_type=ContentType.objects.get_for_model(KillSwitch),
            status=ApprovalStatus.PENDING,
        )
        .select_related("requested_by")
        .first()
    )


def sales_page() -> SalesPage:
    """Open sales first (newest first), then the latest closed ones, ``SALES_SHOWN`` in all."""
    open_first = Case(
        When(status__in=OPEN_FORCED_SALE_STATUSES, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    sales = (
        ForcedSale.objects.select_related("facility__client", "approved_by")
        .annotate(closed=open_first)
        .order_by("closed", "-requested_at", "-pk")[:SALES_SHOWN]
    )
    return SalesPage([sale_card(sale) for sale in sales], kill_switch(), pending_kill_switch_lift())
