"""The concentration and exposure page: collateral by class and asset, the securities that are the largest
share of it, and clients by loan against the per-client cap. The collateral is every pool's positions valued
at the prices in use, by the valuation's own rules (one statement on PostgreSQL, ``pool_valuation`` pool by
pool elsewhere); the clients are the margin states the sweep keeps, largest principal first (one index).
Worked out once per finished sweep (``cached_per_sweep``), like the overview."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from collateral.calculations import PositionInput, pool_valuation
from collateral.models import Asset, CollateralPool
from console.selectors.overview import cached_per_sweep, last_finished_sweep
from core.money import CENT, ZERO
from core.sql import sql_file
from financing.enums import MarginStatus
from financing.models import MarginState
from financing.monitoring.sweep import AssetUnit, asset_units
from ledger.models import Balance
from oversight.calculations import plain, share

LARGEST_CLIENTS = 20
LARGEST_SECURITIES = 10


@dataclass(frozen=True)
class AssetRow:
    kind: str
    symbol: str
    quantity: str  # as held, without trailing zeros
    market_value: Decimal
    margin_value: Decimal
    share_of_market_value: Decimal | None
    share_of_margin_value: Decimal | None
    limit: Decimal | None  # the asset's concentration limit in a pool, if it has one


@dataclass(frozen=True)
class ClassRow:
    kind: str
    market_value: Decimal
    margin_value: Decimal
    share_of_market_value: Decimal | None
    share_of_margin_value: Decimal | None


@dataclass(frozen=True)
class ClientRow:
    client: str
    facility: str
    loan: Decimal
    cap: Decimal
    share_of_cap: Decimal | None
    margin_value: Decimal
    status: str
    status_label: str


@dataclass(frozen=True)
class Concentration:
    as_of: object  # when the figures were worked out
    market_value: Decimal
    margin_value: Decimal
    client_cap: Decimal
    classes: list[ClassRow]
    assets: list[AssetRow]
    securities: list[AssetRow]
    clients: list[ClientRow]


@dataclass(frozen=True)
class AssetTotal:
    symbol: str
    quantity: Decimal
    market_value: Decimal
    margin_value: Decimal


def _by_asset_sql(units: list[AssetUnit]) -> list[AssetTotal]:
    fields = ["symbol", "unit_value", "haircut", "concentration_limit", "eligible"]
    with connection.cursor() as cursor:
        cursor.execute(
            sql_file(__file__, "concentration.sql", "by_asset"),
            {name: [getattr(unit, name) for unit in units] for name in fields},
        )
        return [AssetTotal(*row) for row in cursor.fetchall()]


def _by_asset_python(units: list[AssetUnit]) -> list[AssetTotal]:
    terms = {unit.symbol: unit for unit in units}
    pools: dict[int, dict[str, Decimal]] = defaultdict(dict)
    accounts = CollateralPool.objects.values("account_id")
    for account_id, symbol, amount in (
        Balance.objects.filter(account_id__in=accounts)
        .exclude(amount=0)
        .values_list("account_id", "instrument_id", "amount")
    ):
        pools[account_id][symbol] = amount
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for holdings in pools.values():
        valuation = pool_valuation(
            PositionInput(
                symbol=symbol, quantity=quantity, price=terms[symbol].unit_value, fx_to_hkd=Decimal(1),
                haircut=terms[symbol].haircut, concentration_limit=terms[symbol].concentration_limit,
                eligible=terms[symbol].eligible,
            )
            for symbol, quantity in holdings.items()
            if symbol in terms
        )  # fmt: skip
        for position in valuation.positions:
            figures = totals[position.symbol]
            figures[0] += position.quantity
            figures[1] += position.market_value
            figures[2] += position.margin_value
    return [AssetTotal(symbol, *figures) for symbol, figures in totals.items()]


def collateral_by_asset() -> list[AssetTotal]:
    """Every asset held in the pools: the quantity, its market value and its margin value (after haircuts
    and each pool's concentration cuts) at the prices in use."""
    units = asset_units()
    if connection.vendor == "postgresql":
        return _by_asset_sql(units)
    return _by_asset_python(units)


def largest_loans(count: int = LARGEST_CLIENTS) -> list[MarginState]:
    """The open facilities with the most principal, as the sweep left their margin states (by the index
    ``margin_state_largest_loan_idx``), with their facility and client."""
    return list(
        MarginState.objects.filter(open=True, principal__gt=0)
        .select_related("facility__client")
        .order_by("-principal", "facility_id")[:count]
    )


def _concentration() -> Concentration:
    kinds = dict(Asset.objects.values_list("instrument_id", "kind"))
    limits = dict(Asset.objects.values_list("instrument_id", "concentration_limit"))
    totals = [row for row in collateral_by_asset() if row.quantity]
    total_mv = sum((row.market_value for row in totals), ZERO)
    total_lv = sum((row.margin_value for row in totals), ZERO)
    assets = [
        AssetRow(
            kinds.get(row.symbol, ""),
            row.symbol,
            plain(row.quantity),
            row.market_value,
            row.margin_value,
            share(row.market_value, total_mv),
            share(row.margin_value, total_lv),
            limits.get(row.symbol),
        )
        for row in sorted(totals, key=lambda row: (kinds.get(row.symbol, ""), -row.market_value, row.symbol))
    ]
    by_class: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for row in assets:
        by_class[row.kind][0] += row.market_value
        by_class[row.kind][1] += row.margin_value
    classes = [
        ClassRow(kind, mv, lv, share(mv, total_mv), share(lv, total_lv))
        for kind, (mv, lv) in sorted(by_class.items(), key=lambda kv: -kv[1][0])
    ]
    securities = sorted((row for row in assets if row.kind == "security"), key=lambda row: -row.market_value)
    client_cap = (settings.BROKER_CAPITAL_HKD * settings.CLIENT_LOAN_SHARE_OF_CAPITAL).quantize(CENT)
    clients = [
        ClientRow(
            client=state.facility.client.name,
            facility=state.facility.reference,
            loan=state.principal,
            cap=client_cap,
            share_of_cap=share(state.principal, client_cap),
            margin_value=state.margin_value,
            status=state.status,
            status_label=MarginStatus(state.status).label,
        )
        for state in largest_loans()
    ]
    return Concentration(
        as_of=timezone.now(),
        market_value=total_mv,
        margin_value=total_lv,
        client_cap=client_cap,
        classes=classes,
        assets=assets,
        securities=securities[:LARGEST_SECURITIES],
        clients=clients,
    )


def concentration_page() -> Concentration:
    return cached_per_sweep("concentration", last_finished_sweep(), _concentration)
