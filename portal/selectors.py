"""Every figure a portal page shows, read and computed here (from the apps' selectors and pure calculations),
so that templates only place and format them."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from collateral.calculations import PositionInput, pool_valuation
from collateral.models import Asset, CollateralPool
from collateral.selectors import Quote, fx_to_hkd, position_inputs
from core.exceptions import InvalidInput
from core.money import CENT, HKD, ZERO
from financing.enums import OPEN_FORCED_SALE_STATUSES, OPEN_MARGIN_CALL_STATUSES, FacilityStatus, MarginStatus
from financing.history import RatioPoint, ratio_history
from financing.lending.interest import annual_rate_on
from financing.models import Facility, ForcedSale, MarginCall, StandingTopUpInstruction
from financing.selectors import (
    Debt,
    FacilityValuation,
    policy_for,
    standing_top_up_instruction_of,
    thresholds_of,
)
from financing.what_if import SECURITIES, Outcome, Trigger, ladder_triggers, outcome, shocked
from ledger.enums import AccountKind
from ledger.models import Account, Balance
from web.formatting import HONG_KONG

STATUS_WORDS = {
    MarginStatus.NO_DEBT: _("No debt"),
    MarginStatus.OK: _("Within limits"),
    MarginStatus.WARNING: _("Warning"),
    MarginStatus.MARGIN_CALL: _("Margin call"),
    MarginStatus.FORCED_SALE: _("Forced sale"),
}
STATUS_TONE = {
    MarginStatus.NO_DEBT: "ok",
    MarginStatus.OK: "ok",
    MarginStatus.WARNING: "warning",
    MarginStatus.MARGIN_CALL: "danger",
    MarginStatus.FORCED_SALE: "danger",
}
STATUS_MEANING = {
    MarginStatus.NO_DEBT: _("Nothing is owed: the collateral is not at risk."),
    MarginStatus.OK: _("The ratio is below the warning level. Nothing needs doing."),
    MarginStatus.WARNING: _("The ratio is at or above the warning level. Nothing is blocked yet."),
    MarginStatus.MARGIN_CALL: _(
        "The ratio is above the margin-call level: no new drawdowns until it is brought back to target."
    ),
    MarginStatus.FORCED_SALE: _(
        "The ratio is at or above the forced-sale level: collateral is sold at once."
    ),
}
TRIGGER_SYMBOLS = ("BTC", "ETH")
GAUGE_TOP = Decimal(
    "1.50"
)  # the gauge shows ratios from 0 to 150%; a higher ratio pins its marker at the end


def client_facilities(client_id: int) -> list[Facility]:
    return list(
        Facility.objects.filter(client_id=client_id).exclude(status=FacilityStatus.CLOSED).order_by("pk")
    )


def client_facility(client_id: int, facility_id: int) -> Facility:
    """The client's own facility, or 404: another client's id reads as one that does not exist."""
    return get_object_or_404(
        Facility.objects.select_related("client", "policy"), pk=facility_id, client_id=client_id
    )


@dataclass(frozen=True)
class Band:
    status: str
    words: str
    tone: str
    start: Decimal  # percent of the gauge's width
    width: Decimal


@dataclass(frozen=True)
class Gauge:
    bands: list[Band]
    marker: Decimal  # percent of the gauge's width
    off_scale: bool


def gauge_of(ratio: Decimal | None, thresholds) -> Gauge:
    """The gauge's geometry, in percent of its width: the ladder's bands and where the ratio stands."""
    edges = [
        (MarginStatus.OK, Decimal(0), thresholds.warning),
        (MarginStatus.WARNING, thresholds.warning, thresholds.margin_call),
        (MarginStatus.MARGIN_CALL, thresholds.margin_call, thresholds.forced_sale),
        (MarginStatus.FORCED_SALE, thresholds.forced_sale, GAUGE_TOP),
    ]

    def at(value: Decimal) -> Decimal:
        return (min(value, GAUGE_TOP) / GAUGE_TOP * 100).quantize(Decimal("0.01"))

    bands = [
        Band(status, STATUS_WORDS[status], STATUS_TONE[status], at(low), at(high) - at(low))
        for status, low, high in edges
    ]
    off_scale = ratio is None or ratio > GAUGE_TOP
    return Gauge(bands=bands, marker=Decimal(100) if off_scale else at(ratio), off_scale=off_scale)


@dataclass(frozen=True)
class TriggerRow:
    symbol: str
    price: Decimal | None  # today's, in ``currency``
    currency: str
    warning: Trigger
    margin_call: Trigger
    forced_sale: Trigger

    @property
    def levels(self) -> list[Trigger]:
        return [self.warning, self.margin_call, self.forced_sale]


@dataclass(frozen=True)
class Position:
    symbol: str
    name: str
    kind: str
    quantity: Decimal
    price: Decimal | None
    currency: str
    priced_at: datetime.datetime | None
    haircut: Decimal
    market_value: Decimal
    margin_value: Decimal
    excess_over_limit: Decimal
    concentration_limit: Decimal | None
    eligible: bool


@dataclass(frozen=True)
class Overview:
    facility: Facility
    valued_at: datetime.datetime
    valuation: FacilityValuation
    status: str
    status_words: str
    status_tone: str
    status_meaning: str
    interest_rate: Decimal | None
    gauge: Gauge
    triggers: list[TriggerRow]
    positions: list[Position]
    inputs: list[PositionInput] = field(repr=False)
    instruction: StandingTopUpInstruction | None
    free_holdings: dict[str, Decimal]

    @property
    def debt(self) -> Debt:
        return self.valuation.debt

    @property
    def thresholds(self):
        return self.valuation.thresholds


@dataclass(frozen=True)
class _Reading:
    """What one request reads for a facility, in as few queries as the figures allow."""

    holdings: dict[str, Decimal]  # pledged, symbol → quantity (non-zero)
    free: dict[str, Decimal]  # free at the broker, symbol → quantity (non-zero)
    debt: Debt
    assets: dict[str, Asset]
    prices: dict[str, Quote]


def _read(facility: Facility, symbols: tuple[str, ...] = ()) -> _Reading:
    """The pool's and the free holdings and the debt in one query over the ledger's balances (what
    ``pool_holdings``, ``custody_holdings`` and ``facility_debt`` read one query each), then the assets held
    (and ``symbols``) with their current prices in one more (``assets_by_symbol`` and ``current_prices``)."""
    debt_accounts = {
        facility.principal_account_id: "principal",
        facility.interest_account_id: "interest",
        facility.fees_account_id: "fees",
    }
    client_id = facility.client_id
    rows = Balance.objects.filter(
        Q(account_id__in=CollateralPool.objects.filter(client_id=client_id).values("account_id"))
        | Q(account_id__in=Account.objects.filter(kind=AccountKind.CUSTODY, client_id=client_id).values("pk"))
        | Q(account_id__in=list(debt_accounts), instrument_id=HKD)
    ).values_list("account_id", "account__kind", "instrument_id", "amount")
    holdings: dict[str, Decimal] = {}
    free: dict[str, Decimal] = {}
    owed = dict.fromkeys(debt_accounts.values(), ZERO)
    for account_id, kind, instrument, amount in rows.order_by("instrument_id"):
        if account_id in debt_accounts:
            owed[debt_accounts[account_id]] = amount.quantize(CENT)  # HKD legs are whole cents already
        elif amount == 0:
            continue
        elif kind == AccountKind.CUSTODY:
            free[instrument] = free.get(instrument, ZERO) + amount
        else:
            holdings[instrument] = amount
    assets, prices = {}, {}
    wanted = sorted({*holdings, *symbols})
    for asset in Asset.objects.filter(pk__in=wanted).select_related("instrument", "current_price__price"):
        assets[asset.symbol] = asset
        current = getattr(asset, "current_price", None)  # a reverse one-to-one: absent without a price
        if current is not None:
            price = current.price
            prices[asset.symbol] = Quote(price.price, price.currency, price.source, price.observed_at)
    return _Reading(holdings=holdings, free=free, debt=Debt(**owed), assets=assets, prices=prices)


def facility_overview(facility: Facility, *, triggers: bool = True) -> Overview:
    """The facility valued now, from current prices and the ledger (what the sweep values it on), with the
    positions, the trigger prices and the standing instruction (``triggers=False``: without the last two,
    for a page that shows neither). Every figure is worked out once here, and the pages pass it around."""
    reading = _read(facility, TRIGGER_SYMBOLS if triggers else ())
    assets, prices = reading.assets, reading.prices
    inputs = position_inputs(reading.holdings, assets=assets, prices=prices, fx=fx_to_hkd())
    valuation = FacilityValuation(
        facility_id=facility.pk,
        valuation=pool_valuation(inputs),
        debt=reading.debt,
        thresholds=thresholds_of(policy_for(facility)),
    )
    ratio = valuation.margin_ratio
    status = valuation.status
    rows = []
    for symbol in TRIGGER_SYMBOLS if triggers else ():
        asset = assets.get(symbol)
        if asset is None:
            continue
        quote = prices.get(symbol)
        found = ladder_triggers(inputs, symbol, debt=valuation.debt.total, thresholds=valuation.thresholds)
        rows.append(
            TriggerRow(
                symbol=symbol,
                price=quote.price if quote else None,
                currency=quote.currency if quote else asset.currency,
                warning=found[MarginStatus.WARNING],
                margin_call=found[MarginStatus.MARGIN_CALL],
                forced_sale=found[MarginStatus.FORCED_SALE],
            )
        )
    values = {v.symbol: v for v in valuation.valuation.positions}
    positions = []
    for p in inputs:
        if p.symbol not in values:
            continue
        asset = assets[p.symbol]
        quote = prices.get(p.symbol)
        v = values[p.symbol]
        positions.append(
            Position(
                symbol=p.symbol,
                name=asset.name,
                kind=asset.kind,
                quantity=p.quantity,
                price=p.price,
                currency=quote.currency if quote else asset.currency,
                priced_at=quote.observed_at if quote else None,
                haircut=p.haircut,
                market_value=v.market_value,
                margin_value=v.margin_value,
                excess_over_limit=v.excess_over_limit,
                concentration_limit=p.concentration_limit,
                eligible=p.eligible,
            )
        )
    try:
        rate = annual_rate_on(facility, timezone.localdate())
    except InvalidInput:
        rate = None
    return Overview(
        facility=facility,
        valued_at=timezone.now(),
        valuation=valuation,
        status=status,
        status_words=STATUS_WORDS[status],
        status_tone=STATUS_TONE[status],
        status_meaning=STATUS_MEANING[status],
        interest_rate=rate,
        gauge=gauge_of(ratio, valuation.thresholds),
        triggers=rows,
        positions=positions,
        inputs=inputs,
        instruction=standing_top_up_instruction_of(facility.client) if triggers else None,
        free_holdings=reading.free,
    )


@dataclass(frozen=True)
class WhatIf:
    shocks: dict[str, Decimal]
    outcome: Outcome
    status_words: str
    status_tone: str
    status_meaning: str
    gauge: Gauge


SHOCK_LIMITS = (Decimal("-0.60"), Decimal("0.20"))


def what_if(facility: Facility, *, btc: Decimal, eth: Decimal, securities: Decimal) -> WhatIf:
    """The facility valued with BTC, ETH and every security moved by the given fractions (each between −60%
    and +20%), by the sweep's own valuation and ladder."""
    low, high = SHOCK_LIMITS
    shocks = {"BTC": btc, "ETH": eth, SECURITIES: securities}
    for name, value in shocks.items():
        if not low <= value <= high:
            raise InvalidInput(f"{name}: a move must be between −60% and +20%.")
    reading = _read(facility)
    inputs = position_inputs(reading.holdings, assets=reading.assets, prices=reading.prices, fx=fx_to_hkd())
    thresholds = thresholds_of(policy_for(facility))
    return _what_if_of(inputs, shocks, debt=reading.debt.total, thresholds=thresholds)


def unshocked_what_if(overview: Overview) -> WhatIf:
    """The what-if with every slider at 0%, from the overview's own reading (no second one)."""
    zero = Decimal(0)
    shocks = {"BTC": zero, "ETH": zero, SECURITIES: zero}
    return _what_if_of(overview.inputs, shocks, debt=overview.debt.total, thresholds=overview.thresholds)


def _what_if_of(inputs, shocks: dict[str, Decimal], *, debt: Decimal, thresholds) -> WhatIf:
    result = outcome(shocked(inputs, shocks), debt=debt, thresholds=thresholds)
    return WhatIf(
        shocks=shocks,
        outcome=result,
        status_words=STATUS_WORDS[result.status],
        status_tone=STATUS_TONE[result.status],
        status_meaning=STATUS_MEANING[result.status],
        gauge=gauge_of(result.margin_ratio, thresholds),
    )


@dataclass(frozen=True)
class Alert:
    """What the banner on every page says about one facility: its open margin call and any forced sale."""

    facility: Facility
    call: MarginCall | None
    sale: ForcedSale | None
    orders: list = field(default_factory=list)

    @property
    def seconds_left(self) -> int | None:
        if self.call is None:
            return None
        return max(int((self.call.deadline - timezone.now()).total_seconds()), 0)


def alerts_of(client_id: int) -> list[Alert]:
    """The client's open margin calls and forced sales in progress, one alert per facility."""
    calls = {
        call.facility_id: call
        for call in MarginCall.objects.filter(
            facility__client_id=client_id, status__in=OPEN_MARGIN_CALL_STATUSES
        ).select_related("facility")
    }
    sales = {
        sale.facility_id: sale
        for sale in ForcedSale.objects.filter(
            facility__client_id=client_id, status__in=OPEN_FORCED_SALE_STATUSES
        )
        .select_related("facility")
        .prefetch_related("orders__fills")
    }
    alerts = []
    for facility_id in sorted({*calls, *sales}):
        call, sale = calls.get(facility_id), sales.get(facility_id)
        facility = (call or sale).facility
        alerts.append(Alert(facility, call, sale, list(sale.orders.all()) if sale else []))
    return alerts


def countdown_words(seconds: int | None) -> str:
    """How long is left as hours, minutes and seconds ("27:05:09"); the browser counts down from there."""
    if seconds is None:
        return ""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


# --- history ---

RANGES = {
    "1d": (_("1 day"), datetime.timedelta(days=1)),
    "1w": (_("1 week"), datetime.timedelta(days=7)),
    "1m": (_("1 month"), datetime.timedelta(days=30)),
    "1y": (_("1 year"), datetime.timedelta(days=365)),
    "all": (_("All"), None),
}
HISTORY_POINTS = 1000  # a year is never sent as more than this many points


@dataclass(frozen=True)
class RatioChart:
    range_key: str
    points: list[RatioPoint]
    config: dict  # Chart.js's configuration, for json_script
    latest: RatioPoint | None
    highest: RatioPoint | None
    lowest: RatioPoint | None


def ratio_chart(facility: Facility, range_key: str, *, now: datetime.datetime | None = None) -> RatioChart:
    """The margin ratio over the range, at most ``HISTORY_POINTS`` points (thinned by ``ratio_history``),
    with the policy's thresholds drawn as flat lines."""
    if range_key not in RANGES:
        raise InvalidInput(f"range: {range_key!r} is not one of {', '.join(RANGES)}.")
    end = now or timezone.now()
    span = RANGES[range_key][1]
    start = end - span if span is not None else facility.created_at - datetime.timedelta(seconds=1)
    points = ratio_history(facility.pk, start, end, max_points=HISTORY_POINTS)
    thresholds = thresholds_of(policy_for(facility))
    drawn = list(points)
    if drawn and drawn[-1].at < end:  # what stood at the last change still stands now: draw it to the end
        drawn.append(dataclasses.replace(drawn[-1], at=end))
    # A time axis (Chart.js with the date-fns adapter): each point at its Hong Kong wall-clock time, written
    # without an offset so that the browser reads it as local and shows it unchanged whatever its own zone.
    at = [
        point.at.astimezone(HONG_KONG).replace(tzinfo=None).isoformat(timespec="seconds") for point in drawn
    ]
    ends = [at[0], at[-1]] if at else []

    def flat(label, value, colour):
        return {
            "label": str(label),
            "data": [{"x": moment, "y": value} for moment in ends],
            "borderColor": colour,
            "borderDash": [6, 4],
            "borderWidth": 1,
            "pointRadius": 0,
        }

    zone = gettext("HKT")
    config = {
        "type": "line",
        "data": {
            "datasets": [
                {
                    "label": str(_("Margin ratio")),
                    "data": [
                        {"x": moment, "y": point.margin_ratio}
                        for moment, point in zip(at, drawn, strict=True)
                    ],
                    "borderColor": "#0b4f6c",
                    "borderWidth": 2,
                    "pointRadius": 0,
                    "stepped": True,
                },
                flat(STATUS_WORDS[MarginStatus.WARNING], thresholds.warning, "#8a4b00"),
                flat(STATUS_WORDS[MarginStatus.MARGIN_CALL], thresholds.margin_call, "#b42318"),
                flat(STATUS_WORDS[MarginStatus.FORCED_SALE], thresholds.forced_sale, "#7a1710"),
            ],
        },
        "options": {
            "scales": {
                "x": {
                    "type": "time",
                    "time": {
                        "tooltipFormat": f"yyyy-MM-dd HH:mm '{zone}'",
                        "displayFormats": {
                            "minute": "HH:mm",
                            "hour": "MM-dd HH:mm",
                            "day": "yyyy-MM-dd",
                            "week": "yyyy-MM-dd",
                            "month": "yyyy-MM",
                            "quarter": "yyyy-MM",
                            "year": "yyyy",
                        },
                    },
                    "ticks": {"maxTicksLimit": 6, "maxRotation": 0},
                    "title": {"display": True, "text": str(_("Hong Kong time"))},
                }
            },
            # the levels are lines of two points: the tooltip shows what is nearest in time, not by index
            "interaction": {"mode": "nearest", "axis": "x", "intersect": False},
        },
        "valueFormat": "percent",
    }
    finite = [point for point in points if point.margin_ratio is not None]
    return RatioChart(
        range_key=range_key,
        points=points,
        config=config,
        latest=points[-1] if points else None,
        highest=max(finite, key=lambda point: point.margin_ratio) if finite else None,
        lowest=min(finite, key=lambda point: point.margin_ratio) if finite else None,
    )
