"""A facility's whole story for the console: its margin state, the ratio's history against its thresholds and
the prices behind it, its positions (valued now, with haircuts and concentration cuts), its debt, and one
timeline of everything that happened to it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest, AuditEvent
from collateral.enums import USABLE_PRICE_STATUSES, AssetKind
from collateral.models import CollateralMovement, Price
from collateral.selectors import assets_by_symbol
from financing.enums import InstructionStatus
from financing.history import ratio_history
from financing.models import (
    AutomaticTopUp,
    Drawdown,
    Facility,
    ForcedSale,
    InterestAccrual,
    MarginCall,
    MarginState,
    Repayment,
    SaleFill,
    SaleOrder,
    StandingTopUpInstruction,
)
from financing.selectors import (
    Debt,
    facility_debt,
    facility_pool,
    facility_valuation,
    open_forced_sale,
    open_margin_call,
    policy_for,
    thresholds_of,
)
from web.formatting import hk_time, hkd, percent

CHART_DAYS = 7
CHART_POINTS = 300
TIMELINE_EACH = 100  # the latest of each kind of record
TIMELINE_LENGTH = 200

COLOURS = {"ratio": "#0b4f6c", "warning": "#8a4b00", "margin_call": "#b42318", "forced_sale": "#6b0f0a"}
PRICE_COLOURS = ["#0b4f6c", "#6b4c9a", "#2f7d32", "#8a4b00"]


@dataclass(frozen=True)
class PositionRow:
    symbol: str
    kind: str
    quantity: Decimal
    market_value: Decimal
    haircut: Decimal
    concentration_limit: Decimal | None
    concentration_cut: Decimal  # market value above the limit, which earns no margin value
    margin_value: Decimal
    priced: bool
    eligible: bool


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime.datetime
    kind: str  # drawdown, repayment, interest, movement, margin_call, top_up, sale, order, fill, approval, audit
    kind_label: str
    text: str
    actor: str = ""


@dataclass(frozen=True)
class FacilityPage:
    facility: Facility
    state: MarginState | None
    thresholds: dict[str, Decimal]
    debt: Debt
    market_value: Decimal
    margin_value: Decimal
    margin_ratio: Decimal | None
    live_status: str
    positions: list[PositionRow]
    open_call: MarginCall | None
    open_sale: ForcedSale | None
    instruction: StandingTopUpInstruction | None
    pending_extension: ApprovalRequest | None
    ratio_chart: dict
    price_chart: dict | None
    timeline: list[TimelineEntry]


def _ratio_chart(facility: Facility, thresholds, now: datetime.datetime) -> dict:
    points = ratio_history(facility.pk, now - datetime.timedelta(days=CHART_DAYS), now, CHART_POINTS)
    labels = [hk_time(point.at) for point in points]

    def line(key: str, label: str, value: Decimal) -> dict:
        return {
            "label": label,
            "data": [str(value)] * len(points),
            "borderColor": COLOURS[key],
            "borderDash": [6, 4],
            "borderWidth": 1,
            "pointRadius": 0,
        }

    return {
        "type": "line",
        "valueFormat": "percent",
        "data": {
            "labels": labels,
            "datasets": [
                {
                    "label": _("Margin ratio"),
                    "data": [None if p.margin_ratio is None else str(p.margin_ratio) for p in points],
                    "borderColor": COLOURS["ratio"],
                    "borderWidth": 2,
                    "stepped": True,
                    "pointRadius": 0,
                },
                line("warning", _("Warning"), thresholds.warning),
                line("margin_call", _("Margin call"), thresholds.margin_call),
                line("forced_sale", _("Forced sale"), thresholds.forced_sale),
            ],
        },
        "options": {"plugins": {"legend": {"position": "bottom"}}},
    }


def _price_chart(symbols: list[str], now: datetime.datetime) -> dict | None:
    """The prices of the crypto assets the pool holds over the chart's period (each in its own currency)."""
    if not symbols:
        return None
    since = now - datetime.timedelta(days=CHART_DAYS)
    rows = list(
        Price.objects.filter(asset_id__in=symbols, observed_at__gte=since, status__in=USABLE_PRICE_STATUSES)
        .order_by("observed_at", "pk")
        .values_list("asset_id", "observed_at", "price")
    )
    if len(rows) > CHART_POINTS:
        step = -(-len(rows) // CHART_POINTS)
        rows = [*rows[::step], rows[-1]]
    labels = [hk_time(at) for _, at, _ in rows]
    datasets = []
    for n, symbol in enumerate(symbols):
        datasets.append(
            {
                "label": symbol,
                "data": [str(price) if asset == symbol else None for asset, _, price in rows],
                "borderColor": PRICE_COLOURS[n % len(PRICE_COLOURS)],
                "spanGaps": True,
                "pointRadius": 0,
                "yAxisID": f"y{n}" if n else "y",
            }
        )
    scales = {
        f"y{n}": {"position": "right", "grid": {"drawOnChartArea": False}} for n in range(1, len(symbols))
    }
    return {
        "type": "line",
        "data": {"labels": labels, "datasets": datasets},
        "options": {"scales": scales, "plugins": {"legend": {"position": "bottom"}}},
    }


def _positions(facility: Facility):
    valuation = facility_valuation(facility)
    assets = assets_by_symbol([p.symbol for p in valuation.valuation.positions])
    rows = []
    for position in valuation.valuation.positions:
        asset = assets[position.symbol]
        rows.append(
            PositionRow(
                symbol=position.symbol,
                kind=asset.get_kind_display(),
                quantity=position.quantity.normalize(),
                market_value=position.market_value,
                haircut=asset.haircut,
                concentration_limit=asset.concentration_limit,
                concentration_cut=position.excess_over_limit,
                margin_value=position.margin_value,
                priced=position.priced,
                eligible=asset.eligible,
            )
        )
    return valuation, rows


def _audit_targets(facility: Facility) -> Q:
    def of(model, pks) -> Q:
        return Q(target_type=ContentType.objects.get_for_model(model), target_id__in=[str(pk) for pk in pks])

    calls = list(MarginCall.objects.filter(facility=facility).values_list("pk", flat=True))
    sales = list(ForcedSale.objects.filter(facility=facility).values_list("pk", flat=True))
    instructions = list(
        StandingTopUpInstruction.objects.filter(client_id=facility.client_id).values_list("pk", flat=True)
    )
    return (
        of(Facility, [facility.pk])
        | of(MarginCall, calls)
        | of(ForcedSale, sales)
        | of(StandingTopUpInstruction, instructions)
        | of(type(facility.client), [facility.client_id])
    )


def facility_timeline(facility: Facility) -> list[TimelineEntry]:
    """Everything that happened to the facility, newest first: the latest ``TIMELINE_EACH`` of each kind."""
    n = TIMELINE_EACH
    entries: list[TimelineEntry] = []
    add = entries.append
    for d in Drawdown.objects.filter(facility=facility)[:n]:
        add(TimelineEntry(d.created_at, "drawdown", _("Drawdown"), f"Drew {hkd(d.amount)}", d.actor_label))
    for r in Repayment.objects.filter(facility=facility)[:n]:
        add(
            TimelineEntry(
                r.created_at,
                "repayment",
                _("Repayment"),
                f"Repaid {hkd(r.amount)}: {hkd(r.to_fees)} fees, {hkd(r.to_interest)} interest, "
                f"{hkd(r.to_principal)} principal",
                r.actor_label,
            )
        )
    for i in InterestAccrual.objects.filter(facility=facility)[:n]:
        add(
            TimelineEntry(
                i.created_at,
                "interest",
                _("Interest"),
                f"{hkd(i.amount)} interest for {i.days} day(s) to {i.accrual_date:%Y-%m-%d} at "
                f"{percent(i.annual_rate, 3)} a year",
            )
        )
    pool = facility_pool(facility)
    if pool is not None:
        for m in CollateralMovement.objects.filter(pool=pool)[:n]:
            add(
                TimelineEntry(
                    m.created_at,
                    "movement",
                    _("Collateral"),
                    f"{m.get_kind_display()} of {m.quantity.normalize():f} {m.asset_id}",
                    m.actor_label,
                )
            )
    for c in MarginCall.objects.filter(facility=facility)[:n]:
        add(
            TimelineEntry(
                c.issued_at,
                "margin_call",
                _("Margin call"),
                f"Margin call #{c.pk} issued at {percent(c.ratio_at_issue)}: repay {hkd(c.repayment_due)} or "
                f"top up {hkd(c.top_up_due)} by {hk_time(c.deadline)}",
            )
        )
        if c.escalated_at:
            add(
                TimelineEntry(
                    c.escalated_at, "margin_call", _("Margin call"), f"Margin call #{c.pk} escalated"
                )
            )
        if c.closed_at:
            add(
                TimelineEntry(
                    c.closed_at,
                    "margin_call",
                    _("Margin call"),
                    f"Margin call #{c.pk} {c.get_status_display().lower()}"
                    + (f": {c.close_reason}" if c.close_reason else ""),
                )
            )
    for t in AutomaticTopUp.objects.filter(facility=facility)[:n]:
        add(
            TimelineEntry(
                t.created_at,
                "top_up",
                _("Automatic top-up"),
                f"Automatic top-up #{t.pk}: {t.get_outcome_display().lower()}; ratio "
                f"{percent(t.ratio_before)} → {percent(t.ratio_after)}",
                t.actor_label,
            )
        )
    for s in ForcedSale.objects.filter(facility=facility)[:n]:
        add(
            TimelineEntry(
                s.requested_at,
                "sale",
                _("Forced sale"),
                f"Forced sale #{s.pk} requested ({s.get_trigger_display().lower()}) at "
                f"{percent(s.ratio_at_request)}; now {s.get_status_display().lower()}"
                + (f": {s.status_reason}" if s.status_reason else ""),
            )
        )
    for o in SaleOrder.objects.filter(forced_sale__facility=facility).exclude(placed_at=None)[:n]:
        add(
            TimelineEntry(
                o.placed_at,
                "order",
                _("Sale order"),
                f"Sell {o.quantity.normalize():f} {o.asset_id} ({o.client_order_id}, "
                f"{o.get_status_display().lower()})",
            )
        )
    for f in SaleFill.objects.filter(order__forced_sale__facility=facility).select_related("order")[:n]:
        add(
            TimelineEntry(
                f.created_at,
                "fill",
                _("Fill"),
                f"Sold {f.quantity.normalize():f} {f.order.asset_id} at {f.price.normalize():f} "
                f"{f.order.price_currency}: {hkd(f.proceeds)} net",
            )
        )
    targets = _audit_targets(facility)
    for a in ApprovalRequest.objects.filter(targets).select_related("requested_by", "decided_by")[:n]:
        add(
            TimelineEntry(
                a.requested_at,
                "approval",
                _("Approval"),
                f"Request #{a.pk} ({a.kind.replace('_', ' ')}): {a.get_status_display().lower()}",
                a.requested_by.username,
            )
        )
    for e in AuditEvent.objects.filter(targets).order_by("-created_at", "-pk")[:n]:
        add(TimelineEntry(e.created_at, "audit", _("Audit"), f"{e.action} — {e.target_repr}", e.actor_label))
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:TIMELINE_LENGTH]


def facility_page(facility: Facility, now: datetime.datetime | None = None) -> FacilityPage:
    now = now or timezone.now()
    thresholds = thresholds_of(policy_for(facility))
    valuation, positions = _positions(facility)
    call = open_margin_call(facility)
    pending = None
    if call is not None:
        pending = ApprovalRequest.objects.filter(
            kind="margin_call_deadline",
            target_type=ContentType.objects.get_for_model(MarginCall),
            target_id=str(call.pk),
            status=ApprovalStatus.PENDING,
        ).first()
    crypto = [p.symbol for p in positions if p.kind == AssetKind.CRYPTO.label]
    return FacilityPage(
        facility=facility,
        state=MarginState.objects.filter(facility=facility).first(),
        thresholds={
            "warning": thresholds.warning,
            "margin_call": thresholds.margin_call,
            "forced_sale": thresholds.forced_sale,
            "target": thresholds.target,
        },
        debt=facility_debt(facility),
        market_value=valuation.market_value,
        margin_value=valuation.margin_value,
        margin_ratio=valuation.margin_ratio,
        live_status=valuation.status.label,
        positions=positions,
        open_call=call,
        open_sale=open_forced_sale(facility),
        instruction=StandingTopUpInstruction.objects.filter(
            client_id=facility.client_id, status=InstructionStatus.ACTIVE
        ).first(),
        pending_extension=pending,
        ratio_chart=_ratio_chart(facility, thresholds, now),
        price_chart=_price_chart(crypto, now),
        timeline=facility_timeline(facility),
    )
