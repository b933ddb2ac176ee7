"""A kept report as the console shows it: each figure formatted by its kind (``oversight.exports.Kind``), as
every page formats amounts, percentages and times. The exports keep the exact values."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.dateparse import parse_datetime

from oversight.exports import INFINITE_RATIO, Kind, Report
from web.formatting import MISSING, hk_time, hkd, percent, quantity, ratio_or_infinite

RIGHT_ALIGNED = {Kind.HKD, Kind.SHARE, Kind.RATIO, Kind.QUANTITY, Kind.COUNT}


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool = False  # right-aligned, like every figure on the console


@dataclass(frozen=True)
class ShownTable:
    title: str
    headers: list[Cell]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class ShownReport:
    title: str
    lines: list[tuple[str, Cell]]
    tables: list[ShownTable]


def _exact(value: object) -> Decimal:
    # A kept report holds decimals as strings and counts as ints (accounts.audit.json_value); never a float.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"A figure must be kept as a string, an int or a Decimal, not {type(value).__name__}")
    return Decimal(value)


def figure(value: object, kind: str) -> str:
    """One figure as a page shows it: HK$1,234.50, 74.50%, ∞, 2026-12-07 17:30 HKT; nothing kept: —."""
    if value is None or value == "":
        return MISSING
    if kind == Kind.HKD:
        return hkd(_exact(value))
    if kind == Kind.SHARE:
        return percent(_exact(value))
    if kind == Kind.RATIO:
        return ratio_or_infinite(None if value == INFINITE_RATIO else _exact(value))
    if kind == Kind.QUANTITY:
        return quantity(_exact(value))
    if kind == Kind.TIME:
        moment = parse_datetime(value) if isinstance(value, str) else value
        return hk_time(moment) if moment is not None else str(value)
    return str(value)


def report_shown(report: Report) -> ShownReport:
    """``report`` with every figure formatted by its kind; a report kept without kinds shows as kept."""

    def kinds(given, count: int) -> list[str]:
        return list(given) if len(given) == count else [Kind.TEXT] * count

    line_kinds = kinds(report.line_kinds, len(report.lines))
    lines = [
        (label, Cell(figure(value, kind), numeric=True))
        for (label, value), kind in zip(report.lines, line_kinds, strict=True)
    ]
    tables = []
    for table in report.tables:
        columns = kinds(table.kinds, len(table.headers))
        tables.append(
            ShownTable(
                table.title,
                [
                    Cell(header, kind in RIGHT_ALIGNED)
                    for header, kind in zip(table.headers, columns, strict=True)
                ],
                [
                    [
                        Cell(figure(value, kind), kind in RIGHT_ALIGNED)
                        for value, kind in zip(row, columns, strict=True)
                    ]
                    for row in table.rows
                ],
            )
        )
    return ShownReport(report.title, lines, tables)
