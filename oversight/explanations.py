"""Every forced sale explained from stored records only: the quotes from every venue its plan was made on
(the median and the band), the ratio and thresholds that triggered it, the plan as first made, every order
and fill with its slippage against the oracle's price, and the ratio after (docs/stress-tests.md,
"Forced-sale explanation")."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.conf import settings

from accounts.models import AuditEvent
from collateral.calculations import WIDE
from collateral.models import FxRate, Price, PriceQuote
from financing.calculations import Thresholds
from financing.models import ForcedSale, SaleFill, SaleOrder
from financing.selectors import StoredPlan, policy_for, stored_plan, thresholds_of
from oversight.exports import INFINITE_RATIO, Report, Table

SLIPPAGE_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class PriceUsed:
    price: Price
    quotes: list[PriceQuote]
    band: Decimal  # the oracle's band around the median (the setting now)


@dataclass(frozen=True)
class FillLine:
    fill: SaleFill
    reference_price: Decimal | None
    slippage: Decimal | None  # (fill − oracle) / oracle: negative is below the oracle's price


@dataclass(frozen=True)
class OrderLine:
    order: SaleOrder
    fills: list[FillLine]


@dataclass(frozen=True)
class Explanation:
    sale: ForcedSale
    thresholds: Thresholds
    policy_name: str
    prices: list[PriceUsed]
    fx_rates: list[FxRate]
    first_plan: StoredPlan | None
    last_plan: StoredPlan | None  # as made again while the fills arrived
    orders: list[OrderLine]
    audit: list[AuditEvent]

    @property
    def ratio_after(self) -> Decimal | None:
        """The ratio after the sale: the last plan's valuation (None without a plan, or where infinite)."""
        return self.last_plan.margin_ratio if self.last_plan else None


def slippage(price: Decimal, reference: Decimal | None) -> Decimal | None:
    """(fill price − oracle price) / oracle price, to six places half-up; None without an oracle price."""
    if reference is None or reference <= 0:
        return None
    with localcontext(prec=WIDE):
        return ((price - reference) / reference).quantize(SLIPPAGE_PLACES, rounding=ROUND_HALF_UP)


def forced_sale_explanation(sale: ForcedSale) -> Explanation:
    facility = sale.facility
    policy = policy_for(facility)
    prices = [
        PriceUsed(
            price, list(PriceQuote.objects.filter(chosen_price=price).order_by("venue")), settings.PRICE_BAND
        )
        for price in sale.planned_on_prices.select_related("asset").order_by("asset_id", "-observed_at")
    ]
    orders = []
    for order in sale.orders.select_related("asset").order_by("pk"):
        fills = [
            FillLine(fill, order.reference_price, slippage(fill.price, order.reference_price))
            for fill in order.fills.order_by("pk")
        ]
        orders.append(OrderLine(order, fills))
    audit = list(
        AuditEvent.objects.filter(target_type__model="forcedsale", target_id=str(sale.pk)).order_by(
            "created_at", "pk"
        )
    )
    return Explanation(
        sale=sale, thresholds=thresholds_of(policy), policy_name=policy.name,
        prices=prices, fx_rates=list(sale.planned_on_fx_rates.order_by("currency", "-observed_at")),
        first_plan=stored_plan(sale.first_plan), last_plan=stored_plan(sale.plan), orders=orders,
        audit=audit,
    )  # fmt: skip


def explanation_report(explanation: Explanation) -> Report:
    sale = explanation.sale
    t = explanation.thresholds
    first = explanation.first_plan
    lines = [
        ("Facility", f"{sale.facility.reference} ({sale.facility.client.name})"),
        ("Trigger", sale.get_trigger_display()),
        ("Status", f"{sale.get_status_display()} {sale.status_reason}".strip()),
        ("Requested", sale.requested_at),
        ("Ratio at request", sale.ratio_at_request if sale.ratio_at_request is not None else INFINITE_RATIO),
        (
            "Policy",
            f"{explanation.policy_name}: warning {t.warning}, margin call {t.margin_call}, forced sale "
            f"{t.forced_sale}, target {t.target}",
        ),
        (
            "Margin call",
            f"#{sale.margin_call_id}: ratio at issue {sale.margin_call.ratio_at_issue}, deadline "
            f"{sale.margin_call.deadline.isoformat()}"
            if sale.margin_call_id
            else "none",
        ),
        ("First plan made", first.planned_at if first else "none"),
        ("Debt at the first plan (HKD)", first.debt if first else ""),
        ("Margin value at the first plan (HKD)", first.margin_value if first else ""),
        ("Ratio at the first plan", first.margin_ratio if first else ""),
        ("Target", first.target if first else ""),
        ("Ratio the first plan expected after", first.ratio_after if first else ""),
        ("Shortfall the first plan expected (HKD)", first.shortfall if first else ""),
        ("Proceeds received (HKD)", sale.proceeds),
        ("Shortfall (HKD)", sale.shortfall),
        ("Ratio after (the last plan's valuation)", explanation.ratio_after),
    ]
    quotes = Table("Quotes the plan was made on", ["Asset", "Price used", "Currency", "Source", "Observed",
                                                   "Venue", "Venue quote", "Quote status", "Band"], [
        [p.price.asset_id, p.price.price, p.price.currency, p.price.source, p.price.observed_at, q.venue, q.price,
         q.get_status_display(), p.band]
        for p in explanation.prices for q in (p.quotes or [None]) if q is not None
    ] + [
        [p.price.asset_id, p.price.price, p.price.currency, p.price.source, p.price.observed_at, "", "", "", ""]
        for p in explanation.prices if not p.quotes
    ])  # fmt: skip
    fx = Table("FX rates the plan was made on", ["Pair", "Rate", "Source", "Observed"], [
        [f"{r.currency}/{r.quote}", r.rate, r.source, r.observed_at] for r in explanation.fx_rates])  # fmt: skip
    plan = Table("The plan as first made", ["Asset", "Quantity", "Market value (HKD)", "Proceeds (HKD)"], [
        [s.asset, s.quantity, s.market_value, s.proceeds] for s in (first.sales if first else [])])  # fmt: skip
    orders = Table("Orders and fills", ["Order", "Asset", "Route", "Quantity", "Status", "Oracle price", "Limit",
                                        "Fill", "Fill quantity", "Fill price", "Fee", "Net proceeds (HKD)",
                                        "Slippage"], [
        [line.order.client_order_id, line.order.asset_id, line.order.route, line.order.quantity, line.order.status,
         line.order.reference_price, line.order.limit_price, f.fill.fill_key if f else "", f.fill.quantity if f else "",
         f.fill.price if f else "", f.fill.fee if f else "", f.fill.proceeds if f else "", f.slippage if f else ""]
        for line in explanation.orders for f in (line.fills or [None])
    ])  # fmt: skip
    trail = Table("Audit trail", ["When", "Who", "What"], [
        [e.created_at, e.actor_label, e.action] for e in explanation.audit])  # fmt: skip
    return Report(f"Forced sale #{sale.pk} explained", lines, [quotes, fx, plan, orders, trail])
