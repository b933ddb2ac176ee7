"""Monthly statements: debt from the ledger at each end of the month, interest day by day, movements,
collateral, calls; on screen and as a PDF."""

import base64
import re
import zlib
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from accounts.audit import SYSTEM
from financing.lending.interest import interest_accrue
from portal.statements import monthly_statement
from tests.helpers import login_as

pytestmark = pytest.mark.django_db


def _streams(data: bytes) -> str:
    """A PDF's content streams, decoded (reportlab's are ASCII85 over Flate)."""
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", data, re.S):
        stream = stream.strip()
        try:
            if stream.endswith(b"~>"):
                stream = base64.a85decode(stream[:-2].replace(b"\n", b""))
            chunks.append(zlib.decompress(stream).decode("latin-1"))
        except (ValueError, zlib.error):
            chunks.append(stream.decode("latin-1"))
    return "".join(chunks)


ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _drawn_strings(data: bytes) -> list[bytes]:
    """Every string drawn with Tj, its escapes (\\( \\) \\\\ \\ddd) undone, as bytes."""
    strings = []
    for literal in re.findall(r"\(((?:\\.|[^\\)])*)\) Tj", _streams(data), re.S):
        text = re.sub(
            r"\\([0-7]{1,3}|.)",
            lambda m: chr(int(m[1], 8)) if m[1][0] in "01234567" else ESCAPES.get(m[1], m[1]),
            literal,
            flags=re.S,
        )
        strings.append(text.encode("latin-1"))
    return strings


def pdf_text(data: bytes) -> str:
    """The text drawn in a PDF in a Latin font (one byte a character)."""
    return "".join(s.decode("latin-1") for s in _drawn_strings(data))


def pdf_cid_text(data: bytes) -> str:
    """The text drawn in a PDF in a Unicode CID font (UCS-2, two bytes a character, as reportlab writes)."""
    return "".join(s.decode("utf-16-be", errors="replace") for s in _drawn_strings(data) if len(s) % 2 == 0)


def test_the_month_s_debt_interest_movements_and_collateral(facility):
    """This month opens with no debt and closes with the drawdown and the interest; next month opens there."""
    today = timezone.localdate()
    interest_accrue(facility=facility, accrual_date=today, actor=SYSTEM)
    now = monthly_statement(facility, today.year, today.month)
    assert now.opening.total == 0
    assert now.closing.principal == Decimal("265200.00")
    assert [m.kind for m in now.movements if m.kind == "drawdown"] == ["drawdown"]
    assert now.interest_days  # each day of the accrual, with its principal and rate
    assert all(day.rate == Decimal("0.065") for day in now.interest_days)
    assert now.interest_charged == now.closing.interest
    assert now.collateral == {"BTC": Decimal("1")}
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    after = monthly_statement(facility, year, month)
    assert after.opening == now.closing
    assert after.movements == []


def test_the_statement_page_and_its_pdf(signed_in, facility):
    today = timezone.localdate()
    listing = signed_in.get(reverse("portal:statements", args=[facility.pk])).content.decode()
    title = f"{today.year}-{today.month:02d}"
    assert title in listing
    page = signed_in.get(reverse("portal:statement", args=[facility.pk, today.year, today.month]))
    html = page.content.decode()
    assert f"Statement for {title}" in html
    assert "HK$265,200.00" in html
    response = signed_in.get(reverse("portal:statement_pdf", args=[facility.pk, today.year, today.month]))
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    assert f"Statement for {title}" in text
    assert "HK$265,200.00" in text
    assert b"MSung-Light" not in response.content  # English needs no Chinese font


def test_the_pdf_in_traditional_chinese_is_drawn_in_a_chinese_font(signed_in, facility):
    today = timezone.localdate()
    signed_in.cookies["django_language"] = "zh-hant"
    response = signed_in.get(reverse("portal:statement_pdf", args=[facility.pk, today.year, today.month]))
    assert response.status_code == 200
    assert b"/BaseFont /MSung-Light" in response.content  # reportlab's built-in Traditional Chinese font
    text = pdf_cid_text(response.content)
    month = f"{today.year}-{today.month:02d}"
    with translation.override("zh-hant"):
        for words in [
            translation.gettext("Statement for %(month)s") % {"month": month},
            translation.gettext("Interest day by day"),
            translation.gettext("Collateral at month end"),
        ]:
            assert any("\u4e00" <= ch <= "\u9fff" for ch in words)  # translated: Chinese characters
            assert words in text
    assert "HK$265,200.00" in text  # the amounts, in the same font


def test_a_month_that_does_not_exist_and_another_client_s_statement_are_not_found(
    client, signed_in, facility, stranger
):
    assert signed_in.get(reverse("portal:statement", args=[facility.pk, 2026, 13])).status_code == 404
    login_as(client, stranger)
    for name in ["portal:statement", "portal:statement_pdf"]:
        assert client.get(reverse(name, args=[facility.pk, 2026, 1])).status_code == 404
    assert client.get(reverse("portal:statements", args=[facility.pk])).status_code == 404
