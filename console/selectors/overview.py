"""What the console's pages show, read from the margin states and the records the sweep and the services keep:
nothing here values a pool again (docs/console.md). Each selector returns every figure its page shows."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, fields
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.db.models import (
    Case,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from collateral.models import Asset
from collateral.selectors import age_in_words, assets_freshness, current_prices, fx_to_hkd
from core.money import HKD, ZERO
from financing.enums import (
    OPEN_FORCED_SALE_STATUSES,
    OPEN_MARGIN_CALL_STATUSES,
    MarginStatus,
)
from financing.liquidation.kill_switch import kill_switch
from financing.models import (
    Facility,
    FirmTotals,
    ForcedSale,
    KillSwitch,
    MarginCall,
    MarginPolicy,
    MarginState,
    SweepRun,
)
from financing.monitoring.totals import AT_RISK_STATUSES, NEAR_WARNING
from financing.monitoring.watchdog import SweepHealth, sweep_health
from financing.selectors import default_policy, total_margin_loans
from ledger.enums import AccountKind
from ledger.models import Balance

STATUS_TONE = {
    MarginStatus.NO_DEBT: "ok",
    MarginStatus.OK: "ok",
    MarginStatus.WARNING: "warning",
    MarginStatus.MARGIN_CALL: "danger",
    MarginStatus.FORCED_SALE: "danger",
}
OVERVIEW_LIST_LENGTH = 10


# --- the firm overview ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int
    tone: str


@dataclass(frozen=True)
class OpenCallRow:
    pk: int
    facility_id: int
    facility_reference: str
    client_name: str
    status_label: str
    issued_at: datetime.datetime
    age: str
    deadline: datetime.datetime
    overdue: bool
    repayment_due: Decimal
    top_up_due: Decimal


@dataclass(frozen=True)
class SaleRow:
    pk: int
    facility_id: int
    facility_reference: str
    client_name: str
    status: str
    status_label: str
    pause_reason: str
    requested_at: datetime.datetime
    proceeds: Decimal
    shortfall: Decimal


@dataclass(frozen=True)
class PriceHealth:
    symbol: str
    kind: str
    fresh: bool
    reason: str


@dataclass(frozen=True)
class LargestClient:
    client_id: int
    reference: str
    name: str
    loan: Decimal


def _share(part: Decimal, whole: Decimal) -> Decimal:
    return part / whole if whole else ZERO


def _sale_row(sale: ForcedSale) -> SaleRow:
    return SaleRow(
        pk=sale.pk,
        facility_id=sale.facility_id,
        facility_reference=sale.facility.reference,
        client_name=sale.facility.client.name,
        status=sale.status,
        status_label=sale.get_status_display(),
        pause_reason=sale.get_pause_reason_display() if sale.pause_reason else "",
        requested_at=sale.requested_at,
        proceeds=sale.proceeds,
        shortfall=sale.shortfall,
    )


def _call_row(call: MarginCall, now: datetime.datetime) -> OpenCallRow:
    return OpenCallRow(
        pk=call.pk,
        facility_id=call.facility_id,
        facility_reference=call.facility.reference,
        client_name=call.facility.client.name,
        status_label=call.get_status_display(),
        issued_at=call.issued_at,
        age=age_in_words(now - call.issued_at),
        deadline=call.deadline,
        overdue=call.deadline <= now,
        repayment_due=call.repayment_due.amount,
        top_up_due=call.top_up_due.amount,
    )


def largest_client_loan() -> LargestClient | None:
    """The client with the most principal outstanding (one index-ordered read of the loan balances)."""
    row = (
        Balance.objects.filter(account__kind=AccountKind.LOAN_PRINCIPAL, instrument_id=HKD, amount__gt=0)
        .order_by("-amount", "account_id")
        .values_list("account__client_id", "account__client__reference", "account__client__name", "amount")
        .first()
    )
    return LargestClient(*row) if row else None


def margin_status_counts() -> tuple[list[StatusCount], int]:
    counted = dict(
        MarginState.objects.filter(open=True).values_list("status").annotate(n=Count("pk")).order_by()
    )
    return status_counts_of(counted), sum(counted.values())


def price_health(now: datetime.datetime | None = None) -> list[PriceHealth]:
    """Every asset but cash, stale ones first: whether its price may be acted on now, and why not."""
    assets = list(Asset.objects.exclude(kind="cash"))
    freshness = assets_freshness(assets, now=now)
    rows = [
        PriceHealth(a.symbol, a.kind, freshness[a.symbol].is_fresh, freshness[a.symbol].reason)
        for a in assets
    ]
    return sorted(rows, key=lambda row: (row.fresh, row.kind != "crypto", row.symbol))


@dataclass(frozen=True)
class FirmAggregates:
    """What changes only as the sweep, the ladder and the services write: computed once per finished sweep
    (and at most every ``AGGREGATES_SECONDS``), whoever asks first (``cached_per_sweep``)."""

    total_lending: Decimal
    largest_client: LargestClient | None
    status_counts: list[StatusCount]
    facilities_open: int
    open_calls_count: int
    open_calls_due: Decimal  # repayments that would cure them all
    open_calls: list[OpenCallRow]
    sales_running_count: int
    sales_running_proceeds: Decimal
    sales_running: list[SaleRow]
    shortfall_count: int
    shortfall_total: Decimal
    shortfalls: list[SaleRow]


@dataclass(frozen=True)
class FirmOverview(FirmAggregates):
    """The firm overview: the per-sweep aggregates with what is read on every request (the caps, the price
    health, the kill switch, the sweep's health)."""

    now: datetime.datetime
    capital: Decimal
    firm_cap: Decimal
    firm_cap_used: Decimal  # share of the cap, 0..1+
    client_cap: Decimal
    largest_client_cap_used: Decimal | None
    prices: list[PriceHealth]
    stale_count: int
    kill_switch: KillSwitch
    last_sweep: SweepRun | None
    sweep: SweepHealth


AGGREGATES_SECONDS = 5


def last_finished_sweep() -> SweepRun | None:
    return SweepRun.objects.filter(finished_at__isnull=False).order_by("-started_at").first()


def cached_per_sweep(name: str, sweep: SweepRun | None, compute):
    """``compute()``, kept in the cache for the latest finished sweep and at most ``AGGREGATES_SECONDS``:
    every member of staff polling a page reads what one of them worked out once after that sweep. Nothing is
    kept before the first sweep."""
    if sweep is None:
        return compute()
    key = f"console:{name}:{sweep.pk}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, AGGREGATES_SECONDS)
    return value


def status_counts_of(by_status: dict[str, int]) -> list[StatusCount]:
    return [
        StatusCount(status.value, status.label, by_status.get(status.value, 0), STATUS_TONE[status])
        for status in MarginStatus
    ]


def _first(records, *ordering: str) -> list:
    """The first ``OVERVIEW_LIST_LENGTH`` of ``records`` with their facility and client: sorted in their own
    table first (thousands of open calls in a crash), then the few joined."""
    chosen = list(records.order_by(*ordering).values_list("pk", flat=True)[:OVERVIEW_LIST_LENGTH])
    found = records.model.objects.select_related("facility__client").in_bulk(chosen)
    return [found[pk] for pk in chosen]


def firm_aggregates(now: datetime.datetime, sweep: SweepRun | None = None) -> FirmAggregates:
    """The overview's figures: the facilities by status, the lending and the largest loan as the sweep
    left them (its ``FirmTotals``: one row), or added up from the margin states and the ledger before any
    sweep has written them; the open calls and sales from their own (small) tables."""
    totals = FirmTotals.objects.filter(run=sweep).select_related("largest_facility__client").first()
    if totals is None:
        counts, facilities_open = margin_status_counts()
        total_lending, largest = total_margin_loans(), largest_client_loan()
    else:
        counts, facilities_open = status_counts_of(totals.by_status), totals.facilities_open
        total_lending, largest = totals.lending, None
        if totals.largest_facility is not None:
            client = totals.largest_facility.client
            largest = LargestClient(client.pk, client.reference, client.name, totals.largest_loan)
    calls = MarginCall.objects.filter(status__in=OPEN_MARGIN_CALL_STATUSES)
    call_totals = calls.aggregate(n=Count("pk"), due=Sum("repayment_due"))
    call_rows = [_call_row(call, now) for call in _first(calls, "deadline", "pk")]
    running = ForcedSale.objects.filter(status__in=OPEN_FORCED_SALE_STATUSES)
    sale_totals = running.aggregate(n=Count("pk"), proceeds=Sum("proceeds"))
    sale_rows = [_sale_row(sale) for sale in _first(running, "-requested_at", "-pk")]
    short = ForcedSale.objects.filter(shortfall__gt=0)
    short_totals = short.aggregate(n=Count("pk"), total=Sum("shortfall"))
    short_rows = [_sale_row(sale) for sale in _first(short, "-requested_at", "-pk")]
    return FirmAggregates(
        total_lending=total_lending,
        largest_client=largest,
        status_counts=counts,
        facilities_open=facilities_open,
        open_calls_count=call_totals["n"],
        open_calls_due=call_totals["due"] or ZERO,
        open_calls=call_rows,
        sales_running_count=sale_totals["n"],
        sales_running_proceeds=sale_totals["proceeds"] or ZERO,
        sales_running=sale_rows,
        shortfall_count=short_totals["n"],
        shortfall_total=short_totals["total"] or ZERO,
        shortfalls=short_rows,
    )


def firm_overview(now: datetime.datetime | None = None) -> FirmOverview:
    now = now or timezone.now()
    capital = settings.BROKER_CAPITAL_HKD
    firm_cap = capital * settings.FIRM_LOAN_TO_CAPITAL_MULTIPLE
    client_cap = capital * settings.CLIENT_LOAN_SHARE_OF_CAPITAL
    sweep = last_finished_sweep()
    figures = cached_per_sweep("overview", sweep, lambda: firm_aggregates(now, sweep))
    largest = figures.largest_client
    prices = price_health(now)
    return FirmOverview(
        **{f.name: getattr(figures, f.name) for f in fields(FirmAggregates)},
        now=now,
        capital=capital,
        firm_cap=firm_cap,
        firm_cap_used=_share(figures.total_lending, firm_cap),
        client_cap=client_cap,
        largest_client_cap_used=_share(largest.loan, client_cap) if largest else None,
        prices=prices,
        stale_count=sum(1 for row in prices if not row.fresh),
        kill_switch=kill_switch(),
        last_sweep=sweep,
        sweep=sweep_health(now),
    )


# --- the at-risk list -------------------------------------------------------------------------------------

AT_RISK_ORDERS = ("btc_move", "ratio")
AT_RISK_PAGE_SIZE = 50


@dataclass(frozen=True)
class AtRiskFilters:
    status: str = ""  # one MarginStatus, or "" for warning or worse and those near it
    client: str = ""  # a client reference, exactly
    asset: str = ""  # an asset symbol the pool holds
    search: str = ""  # part of the facility reference or the client's name or reference
    order: str = "btc_move"
    page: int = 1

    @classmethod
    def from_query(cls, query) -> AtRiskFilters:
        status = query.get("status", "")
        order = query.get("order", "btc_move")
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        return cls(
            status=status if status in MarginStatus.values else "",
            client=query.get("client", "").strip()[:20],
            asset=query.get("asset", "").strip().upper()[:20],
            search=query.get("q", "").strip()[:100],
            order=order if order in AT_RISK_ORDERS else "btc_move",
            page=page,
        )

    def query(self, **changes) -> dict[str, str]:
        values = {
            "status": self.status,
            "client": self.client,
            "asset": self.asset,
            "q": self.search,
            "order": self.order,
            "page": str(self.page),
        }
        values.update({key: str(value) for key, value in changes.items()})
        defaults = {"page": "1", "order": "btc_move"}
        return {key: value for key, value in values.items() if value and defaults.get(key) != value}


@dataclass(frozen=True)
class AtRiskRow:
    facility_id: int
    reference: str
    client_reference: str
    client_name: str
    status: str
    status_label: str
    tone: str
    margin_ratio: Decimal | None
    debt: Decimal
    margin_value: Decimal
    btc_move: Decimal | None  # the BTC price change that brings a margin call (−0.25: a fall of 25%)
    at_call_already: bool
    deadline: datetime.datetime | None
    valued_at: datetime.datetime


@dataclass
class AtRiskPage:
    rows: list[AtRiskRow]
    filters: AtRiskFilters
    total: int
    page: int
    pages: int
    btc_unit_margin_value: Decimal | None
    statuses: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    def _link(self, **changes) -> str:
        return urlencode(self.filters.query(**changes))

    @property
    def live_query(self) -> str:
        return self._link(page=self.page)

    @property
    def previous_query(self) -> str:
        return self._link(page=self.page - 1)

    @property
    def next_query(self) -> str:
        return self._link(page=self.page + 1)

    @property
    def by_ratio_query(self) -> str:
        return self._link(order="ratio", page=1)

    @property
    def by_btc_move_query(self) -> str:
        return self._link(order="btc_move", page=1)


def btc_unit_margin_value() -> Decimal | None:
    """What one BTC adds to a pool's margin value at today's price, FX rate and haircut (None: no price)."""
    btc = Asset.objects.filter(pk="BTC").values_list("haircut", "currency", "eligible").first()
    quote = current_prices(["BTC"]).get("BTC")
    if btc is None or quote is None or not btc[2]:
        return None
    rate = fx_to_hkd().get(quote.currency)
    if rate is None:
        return None
    return quote.price * rate * (1 - btc[0])


def _at_risk_states(filters: AtRiskFilters, btc_unit: Decimal | None):
    default = default_policy()
    ratio = DecimalField(max_digits=30, decimal_places=12)
    states = MarginState.objects.filter(open=True).annotate(
        warning_at=Coalesce(F("policy__warning"), Value(default.warning), output_field=ratio),
        call_at=Coalesce(F("policy__margin_call"), Value(default.margin_call), output_field=ratio),
    )
    if filters.status:
        states = states.filter(status=filters.status)
    else:
        # The lowest warning level of any policy first, which the scan applies before the policies are
        # joined in; then each facility's own.
        lowest = min(MarginPolicy.objects.values_list("warning", flat=True), default=default.warning)
        states = states.filter(
            Q(status__in=AT_RISK_STATUSES)
            | Q(status=MarginStatus.OK, margin_ratio__gte=min(lowest, default.warning) - NEAR_WARNING)
        ).filter(
            Q(status__in=AT_RISK_STATUSES)
            | Q(status=MarginStatus.OK, margin_ratio__gte=F("warning_at") - Value(NEAR_WARNING))
        )
    if filters.client:
        states = states.filter(facility__client__reference__iexact=filters.client)
    if filters.asset:
        states = states.filter(
            Exists(
                Balance.objects.filter(
                    account__collateral_pool__client_id=OuterRef("facility__client_id"),
                    instrument_id=filters.asset,
                    amount__gt=0,
                )
            )
        )
    if filters.search:
        term = filters.search
        states = states.filter(
            Q(facility__reference__icontains=term)
            | Q(facility__client__name__icontains=term)
            | Q(facility__client__reference__icontains=term)
        )
    if btc_unit:
        # The BTC the pool held at the last sweep, as the sweep keeps it on the margin state with the figures
        # (``MarginState.fixed_crypto``): the state alone is read, not the ledger.
        btc_held = Coalesce(
            Cast(KeyTextTransform("BTC", "fixed_crypto"), ratio), Value(0), output_field=ratio
        )
        states = states.annotate(btc_held=btc_held).annotate(
            btc_move=Case(
                When(
                    btc_held__gt=0,
                    then=ExpressionWrapper(
                        (F("debt") / F("call_at") - F("margin_value")) / (F("btc_held") * Value(btc_unit)),
                        output_field=ratio,
                    ),
                ),
                default=None,
                output_field=ratio,
            )
        )
    else:
        states = states.annotate(btc_move=Value(None, output_field=ratio))
    return states


def at_risk_page(filters: AtRiskFilters) -> AtRiskPage:
    """The page the filters ask for, worked out once per finished sweep (``cached_per_sweep``)."""
    sweep = last_finished_sweep()
    return cached_per_sweep(
        f"at-risk:{urlencode(filters.query(page=filters.page))}", sweep, lambda: _at_risk_page(filters, sweep)
    )


def _listed_by_the_sweep(filters: AtRiskFilters, sweep: SweepRun | None) -> int | None:
    """How many the unfiltered list holds, as the sweep counted them in its totals (None: filtered, or not
    counted)."""
    if sweep is None or filters.status or filters.client or filters.asset or filters.search:
        return None
    return FirmTotals.objects.filter(run=sweep).values_list("listed", flat=True).first()


def _at_risk_page(filters: AtRiskFilters, sweep: SweepRun | None = None) -> AtRiskPage:
    btc_unit = btc_unit_margin_value()
    known = _listed_by_the_sweep(filters, sweep)
    states = _at_risk_states(filters, btc_unit)
    if filters.order == "ratio":
        ordering = [F("margin_ratio").desc(nulls_first=True), "facility_id"]
    else:
        # Closest to a call first: a fall of 5% before one of 30%; those at a call already (a rise needed to
        # leave it) before both; facilities without BTC last, by ratio.
        ordering = [
            F("btc_move").desc(nulls_last=True),
            F("margin_ratio").desc(nulls_first=True),
            "facility_id",
        ]

    def states_on(page: int) -> list[MarginState]:
        # The page's states from the states alone (their facilities and clients are read after), each with
        # how many are listed in all unless the sweep counted them (a window: one read, not a second one).
        start = (page - 1) * AT_RISK_PAGE_SIZE
        listed = states if known is not None else states.annotate(listed=Window(Count("pk")))
        return list(
            listed.order_by(*ordering).only(
                "facility_id", "status", "margin_ratio", "debt", "margin_value", "valued_at"
            )[start : start + AT_RISK_PAGE_SIZE]
        )

    page = filters.page
    if known is not None:
        total = known
        page = min(page, max(1, -(-total // AT_RISK_PAGE_SIZE)))
        chosen = states_on(page) if total else []
    else:
        chosen = states_on(page)
        if chosen:
            total = chosen[0].listed
        else:  # past the last page (the list shrank), or nothing listed: the last page
            total = states.count()
            page = max(1, -(-total // AT_RISK_PAGE_SIZE))
            chosen = states_on(page) if total else []
    pages = max(1, -(-total // AT_RISK_PAGE_SIZE))
    facilities = (
        Facility.objects.select_related("client")
        .only("reference", "client__reference", "client__name")
        .in_bulk([state.facility_id for state in chosen])
    )
    for state in chosen:
        state.facility = facilities[state.facility_id]
    deadlines = dict(
        MarginCall.objects.filter(
            facility_id__in=[s.facility_id for s in chosen], status__in=OPEN_MARGIN_CALL_STATUSES
        ).values_list("facility_id", "deadline")
    )
    rows = [
        AtRiskRow(
            facility_id=state.facility_id,
            reference=state.facility.reference,
            client_reference=state.facility.client.reference,
            client_name=state.facility.client.name,
            status=state.status,
            status_label=MarginStatus(state.status).label,
            tone=STATUS_TONE[MarginStatus(state.status)],
            margin_ratio=state.margin_ratio,
            debt=state.debt,
            margin_value=state.margin_value,
            btc_move=state.btc_move,
            at_call_already=state.btc_move is not None and state.btc_move >= 0,
            deadline=deadlines.get(state.facility_id),
            valued_at=state.valued_at,
        )
        for state in chosen
    ]
    return AtRiskPage(
        rows=rows,
        filters=filters,
        total=total,
        page=page,
        pages=pages,
        btc_unit_margin_value=btc_unit,
        statuses=[(status.value, status.label) for status in MarginStatus],
    )
