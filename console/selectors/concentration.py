"""The concentration and exposure page: collateral by class and asset, the securities that are the largest
share of it, and clients by loan against the per-client cap — as of now (the end of today, Hong Kong time).
The figures are the daily margin report's own (oversight.reports.daily_report_build), read from its tables,
so the page and the report never compute them two ways."""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from collateral.models import Asset
from core.money import ZERO
from oversight.calculations import share
from oversight.reports import HONG_KONG, daily_report_build

# The report's tables this page reads (their titles are the report's, kept in English).
CLIENTS_TABLE = "Twenty largest clients by loan"
COLLATERAL_TABLE = "Collateral by class and asset"
SECURITIES_TABLE = "Securities with the largest share of collateral"


@dataclass(frozen=True)
class AssetRow:
    kind: str
    symbol: str
    quantity: str
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


@dataclass(frozen=True)
class Concentration:
    day: datetime.date
    market_value: Decimal
    margin_value: Decimal
    client_cap: Decimal
    classes: list[ClassRow]
    assets: list[AssetRow]
    securities: list[AssetRow]
    clients: list[ClientRow]


def concentration_page(day: datetime.date | None = None) -> Concentration:
    day = day or timezone.localdate(timezone=HONG_KONG)
    figures, report = daily_report_build(day)
    tables = {table.title: table for table in report.tables}
    total_mv, total_lv = figures["collateral_market_value"], figures["collateral_margin_value"]
    limits = {a.symbol: a.concentration_limit for a in Asset.objects.select_related("instrument")}

    assets = [
        AssetRow(
            str(kind), symbol, quantity, mv, lv, share(mv, total_mv), share(lv, total_lv), limits.get(symbol)
        )
        for kind, symbol, quantity, mv, lv, _ in tables[COLLATERAL_TABLE].rows
    ]
    by_class: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for row in assets:
        by_class[row.kind][0] += row.market_value
        by_class[row.kind][1] += row.margin_value
    classes = [
        ClassRow(kind, mv, lv, share(mv, total_mv), share(lv, total_lv))
        for kind, (mv, lv) in sorted(by_class.items(), key=lambda kv: -kv[1][0])
    ]
    by_symbol = {row.symbol: row for row in assets}
    securities = [by_symbol[symbol] for symbol, _, _ in tables[SECURITIES_TABLE].rows]
    clients = [
        ClientRow(name, reference, loan, cap, cap_share, lv, str(status))
        for name, reference, loan, cap, cap_share, _, lv, _, status in tables[CLIENTS_TABLE].rows
    ]
    return Concentration(day, total_mv, total_lv, figures["client_cap"], classes, assets, securities, clients)
