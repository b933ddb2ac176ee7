"""A facility's monthly statement: opening and closing debt from the ledger, interest day by day, every
movement, the collateral at month end and the calls and sales — for the page and for the PDF alike."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from core.exceptions import InvalidInput
from core.money import CENT, HKD, ZERO
from financing.models import Facility, InterestAccrual, MarginCall, RatioSnapshot
from financing.selectors import Debt, facility_pool
from ledger.models import Leg
from portal.activity import Activity, activity_of
from web.formatting import HONG_KONG, hk_time, hkd, percent


@dataclass(frozen=True)
class InterestDay:
    day: datetime.date
    principal: Decimal
    rate: Decimal
    interest: Decimal  # principal × rate / 365, to four places (the accrual rounds the run once, to the cent)


@dataclass(frozen=True)
class Statement:
    facility: Facility
    year: int
    month: int
    start: datetime.datetime
    end: datetime.datetime
    opening: Debt
    closing: Debt
    interest_days: list[InterestDay]
    interest_charged: Decimal
    movements: list[Activity]
    collateral: dict[str, Decimal]  # symbol → quantity in the pool at month end
    last_valuation: RatioSnapshot | None  # the last the sweep recorded in the month
    calls: list[MarginCall]

    @property
    def title(self) -> str:
        return f"{self.year}-{self.month:02d}"


def month_bounds(year: int, month: int) -> tuple[datetime.datetime, datetime.datetime]:
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        raise InvalidInput(f"There is no month {year}-{month}.")
    start = datetime.datetime(year, month, 1, tzinfo=HONG_KONG)
    end = datetime.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=HONG_KONG)
    return start, end


def months_of(facility: Facility, *, today: datetime.date | None = None) -> list[tuple[int, int]]:
    """The months with a statement, newest first: from the month the facility opened to this one."""
    today = today or timezone.localdate()
    year, month = facility.opened_on.year, facility.opened_on.month
    months = []
    while (year, month) <= (today.year, today.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months[::-1]


def _balances_before(
    account_ids: list[int], moment: datetime.datetime, instrument: str | None = None
) -> dict:
    rows = Leg.objects.filter(account_id__in=account_ids, transaction__posted_at__lt=moment)
    if instrument is not None:
        rows = rows.filter(instrument_id=instrument)
    totals = rows.values("account_id", "instrument_id").annotate(total=Sum("amount"))
    return {(row["account_id"], row["instrument_id"]): row["total"] for row in totals}


def _debt_at(facility: Facility, moment: datetime.datetime) -> Debt:
    accounts = {
        "principal": facility.principal_account_id,
        "interest": facility.interest_account_id,
        "fees": facility.fees_account_id,
    }
    balances = _balances_before(list(accounts.values()), moment, HKD)
    return Debt(
        **{part: balances.get((account, HKD), ZERO).quantize(CENT) for part, account in accounts.items()}
    )


def monthly_statement(facility: Facility, year: int, month: int) -> Statement:
    start, end = month_bounds(year, month)
    accruals = InterestAccrual.objects.filter(
        facility=facility, accrual_date__gte=start.date(), accrual_date__lt=end.date()
    ).order_by("accrual_date")
    days = []
    for accrual in accruals:
        for entry in accrual.daily:
            principal, rate = Decimal(entry["principal"]), Decimal(entry["rate"])
            days.append(
                InterestDay(
                    day=datetime.date.fromisoformat(entry["date"]),
                    principal=principal,
                    rate=rate,
                    interest=(principal * rate / 365).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
                )
            )
    pool = facility_pool(facility)
    collateral = {}
    if pool is not None:
        balances = _balances_before([pool.account_id], end)
        collateral = {symbol: total for (_, symbol), total in sorted(balances.items()) if total}
    return Statement(
        facility=facility,
        year=year,
        month=month,
        start=start,
        end=end,
        opening=_debt_at(facility, start),
        closing=_debt_at(facility, end),
        interest_days=days,
        interest_charged=sum((accrual.amount.amount for accrual in accruals), ZERO),
        movements=activity_of(facility, start=start, end=end),
        collateral=collateral,
        last_valuation=RatioSnapshot.objects.filter(facility_id=facility.pk, taken_at__lt=end)
        .order_by("-taken_at", "-pk")
        .first(),
        calls=list(MarginCall.objects.filter(facility=facility, issued_at__gte=start, issued_at__lt=end)),
    )


CHINESE_FONT = "MSung-Light"  # one of reportlab's built-in CID fonts (Traditional Chinese): no font file


def statement_pdf(statement: Statement) -> bytes:
    """The statement as a PDF, laid out by reportlab's platypus (tables that break across pages), in the
    active language: in Traditional Chinese with the Adobe CID font ``MSung-Light`` that PDF readers supply
    (reportlab's own Helvetica has no Chinese), wrapped as CJK text is."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    chinese = (get_language() or "").lower().startswith("zh")
    if chinese:
        pdfmetrics.registerFont(UnicodeCIDFont(CHINESE_FONT))  # registering again is harmless
        for style in styles.byName.values():
            style.fontName = CHINESE_FONT
            style.wordWrap = "CJK"  # break between characters: Chinese has no spaces
    buffer = io.BytesIO()
    facility = statement.facility
    title = _("Statement for %(month)s") % {"month": statement.title}
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"{title} · {facility.reference}",
        author="Margin financing",
    )
    grid = TableStyle(
        [
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6eef2")),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c9d0d8")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            *([("FONTNAME", (0, 0), (-1, -1), CHINESE_FONT)] if chinese else []),
        ]
    )

    def table(rows, widths=None):
        cells = [
            [
                Paragraph(escape(str(cell)), styles["BodyText"]) if len(str(cell)) > 40 else str(cell)
                for cell in row
            ]
            for row in rows
        ]
        result = Table(cells, colWidths=widths, repeatRows=1)
        result.setStyle(grid)
        return result

    def debt_row(words, debt: Debt):
        return [words, *(hkd(v) for v in (debt.principal, debt.interest, debt.fees, debt.total))]

    story = [
        Paragraph(escape(f"{title} · {facility.reference}"), styles["Title"]),
        Paragraph(
            escape(f"{facility.client.name} · {hk_time(statement.start)} – {hk_time(statement.end)}"),
            styles["Normal"],
        ),
        Spacer(1, 6 * mm),
        Paragraph(_("Debt"), styles["Heading2"]),
        table(
            [
                ["", _("Principal"), _("Interest due"), _("Fees due"), _("Debt")],
                debt_row(_("Opening"), statement.opening),
                debt_row(_("Closing"), statement.closing),
            ]
        ),
        Paragraph(_("Interest day by day"), styles["Heading2"]),
    ]
    if statement.interest_days:
        story.append(
            table(
                [[_("Day"), _("Principal"), _("Annual rate"), _("Interest")]]
                + [
                    [d.day.isoformat(), hkd(d.principal), percent(d.rate, 4), f"{d.interest:,.4f}"]
                    for d in statement.interest_days
                ]
                + [[_("Interest charged"), "", "", hkd(statement.interest_charged)]]
            )
        )
    else:
        story.append(Paragraph(_("No interest was charged in this month."), styles["Normal"]))
    story.append(Paragraph(_("Movements"), styles["Heading2"]))
    if statement.movements:
        story.append(
            table(
                [[_("Time"), _("Kind"), _("Description"), _("Amount"), _("Quantity")]]
                + [
                    [
                        hk_time(m.at),
                        m.kind_words,
                        m.description,
                        "" if m.amount is None else hkd(m.amount),
                        m.quantity,
                    ]
                    for m in reversed(statement.movements)
                ],
                widths=[32 * mm, 30 * mm, 70 * mm, 25 * mm, 23 * mm],
            )
        )
    else:
        story.append(Paragraph(_("Nothing moved in this month."), styles["Normal"]))
    story += [
        Paragraph(_("Collateral at month end"), styles["Heading2"]),
        table(
            [[_("Asset"), _("Quantity")]]
            + [[symbol, f"{quantity.normalize():f}"] for symbol, quantity in statement.collateral.items()]
        ),
    ]
    if statement.last_valuation is not None:
        v = statement.last_valuation
        words = _(
            "Last valuation in the month, %(at)s: market value %(market)s, margin value %(margin)s, "
            "margin ratio %(ratio)s."
        ) % {
            "at": hk_time(v.taken_at),
            "market": hkd(v.market_value),
            "margin": hkd(v.margin_value),
            "ratio": percent(v.margin_ratio, 1),
        }
        story.append(Paragraph(escape(words), styles["Normal"]))
    story.append(Paragraph(_("Margin calls and forced sales"), styles["Heading2"]))
    if statement.calls:
        story.append(
            table(
                [[_("Issued"), _("Deadline"), _("Status"), _("Repayment due"), _("Top-up due")]]
                + [
                    [
                        hk_time(c.issued_at),
                        hk_time(c.deadline),
                        c.get_status_display(),
                        hkd(c.repayment_due.amount),
                        hkd(c.top_up_due.amount),
                    ]
                    for c in statement.calls
                ]
            )
        )
    else:
        story.append(Paragraph(_("None in this month."), styles["Normal"]))
    document.build(story)
    return buffer.getvalue()
