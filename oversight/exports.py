"""Tables as CSV, XLSX (openpyxl) and PDF (reportlab): the exports of stress runs and the daily margin report.
A ``Report`` is a title, a few lines of figures and tables of plain values; each format writes the same."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


INFINITE_RATIO = "infinite"  # how an export keeps the ratio of a debt with no margin value against it


class Kind(StrEnum):
    """What a figure is, so that a page can show it as every page does (HK$1,234.50, 74.50%, HKT); the
    exports keep the exact value."""

    TEXT = "text"
    HKD = "hkd"  # an amount in Hong Kong dollars
    SHARE = "share"  # a fraction of a whole: shown as a percentage
    RATIO = "ratio"  # a margin ratio (debt / margin value): a percentage, or INFINITE_RATIO
    QUANTITY = "quantity"
    COUNT = "count"
    TIME = "time"


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)
    kinds: Sequence[str] = ()  # one Kind per column; none given: every column is text

    def __post_init__(self) -> None:
        if self.kinds and len(self.kinds) != len(self.headers):
            raise ValueError(f"{self.title}: {len(self.kinds)} kinds for {len(self.headers)} columns")


@dataclass
class Report:
    title: str
    lines: list[tuple[str, object]] = field(default_factory=list)  # (label, value): the headline figures
    tables: list[Table] = field(default_factory=list)
    line_kinds: Sequence[str] = ()  # one Kind per line, as for a table's columns

    def __post_init__(self) -> None:
        if self.line_kinds and len(self.line_kinds) != len(self.lines):
            raise ValueError(f"{self.title}: {len(self.line_kinds)} kinds for {len(self.lines)} lines")


def text(value: object) -> str:
    """A cell as text: decimals in full (no float), times in ISO, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def report_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([report.title])
    for label, value in report.lines:
        writer.writerow([label, text(value)])
    for table in report.tables:
        writer.writerow([])
        writer.writerow([table.title])
        writer.writerow(table.headers)
        for row in table.rows:
            writer.writerow([text(cell) for cell in row])
    return out.getvalue().encode("utf-8")


def _xlsx_cell(value: object) -> object:
    # Decimals stay exact as text: a spreadsheet number is a binary float.
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else text(value)
    if isinstance(value, Decimal):
        return text(value)
    return value


def report_xlsx(report: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Summary"
    sheet.append([report.title])
    sheet["A1"].font = Font(bold=True, size=14)
    for label, value in report.lines:
        sheet.append([label, _xlsx_cell(value)])
    for number, table in enumerate(report.tables, 1):
        tab = book.create_sheet((f"{number} " + table.title)[:31].replace("/", "-").replace(":", ""))
        tab.append(list(table.headers))
        for cell in tab[1]:
            cell.font = Font(bold=True)
        for row in table.rows:
            tab.append([_xlsx_cell(cell) for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def report_pdf(report: Report, *, max_rows: int = 500) -> bytes:
    """A4 landscape; each table at most ``max_rows`` rows (the CSV and XLSX carry them all), said so."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8)
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
        bottomMargin=12 * mm, title=report.title,
    )  # fmt: skip
    story = [Paragraph(_escape(report.title), styles["Title"])]
    if report.lines:
        lines = LongTable(
            [[_escape(label), _escape(text(value))] for label, value in report.lines], hAlign="LEFT"
        )
        lines.setStyle(
            TableStyle([("FONTSIZE", (0, 0), (-1, -1), 8), ("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold")])
        )
        story += [lines, Spacer(1, 4 * mm)]
    for table in report.tables:
        story.append(Paragraph(_escape(table.title), styles["Heading3"]))
        rows = table.rows[:max_rows]
        if not rows:
            story.append(Paragraph("None.", styles["BodyText"]))
            continue
        data = [[Paragraph(_escape(h), small) for h in table.headers]]
        data += [[Paragraph(_escape(text(cell)), small) for cell in row] for row in rows]
        grid = LongTable(data, repeatRows=1, hAlign="LEFT")
        grid.setStyle(TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf2")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]))  # fmt: skip
        story.append(grid)
        if len(table.rows) > max_rows:
            story.append(
                Paragraph(
                    f"The first {max_rows} of {len(table.rows)} rows; the CSV and XLSX hold them all.", small
                )
            )
        story.append(Spacer(1, 4 * mm))
    document.build(story)
    return out.getvalue()


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def report_bytes(report: Report, format: str) -> bytes:
    if format == "csv":
        return report_csv(report)
    if format == "xlsx":
        return report_xlsx(report)
    if format == "pdf":
        return report_pdf(report)
    raise ValueError(f"No export as {format!r}; there are {', '.join(FORMATS)}.")
