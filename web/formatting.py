"""How amounts, ratios and times read on a page: the one place they are formatted (Decimal, never float)."""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from zoneinfo import ZoneInfo

from django.utils.translation import gettext
from djmoney.money import Money

HONG_KONG = ZoneInfo("Asia/Hong_Kong")
MISSING = "—"  # what a page shows for a value that is not there (no price yet, no deadline)
MINUS = "\u2212"  # the typographic minus sign: wider than a hyphen, read as "minus" by screen readers
CENT = Decimal("0.01")
# The precision a figure is shown in: a stored one has up to 40 digits, never rounded by the context.
DIGITS = 80


def _exact(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{what} must be a Decimal or an int, not {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, not {value}")
    return value


def hkd(amount: Decimal | int | Money | None) -> str:
    """HK$1,234,567.89, negative as −HK$1,234,567.89; rounded half up to the cent."""
    if amount is None:
        return MISSING
    if isinstance(amount, Money):
        if str(amount.currency) != "HKD":
            raise ValueError(f"hkd formats Hong Kong dollars, not {amount.currency}")
        amount = amount.amount
    cents = _exact(amount, "An amount").quantize(CENT, rounding=ROUND_HALF_UP)
    sign = MINUS if cents < 0 else ""
    return f"{sign}HK${abs(cents):,.2f}"


def percent(ratio: Decimal | int | None, places: int = 2) -> str:
    """A ratio as a percentage: Decimal("0.745") → "74.50%", rounded half up to ``places``."""
    if ratio is None:
        return MISSING
    value = (_exact(ratio, "A ratio") * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = MINUS if value < 0 else ""
    return f"{sign}{abs(value):,.{places}f}%"


SYMBOLS = {"HKD": "HK$", "USD": "US$"}


def price_in(amount: Decimal | int | None, currency: str) -> str:
    """A price in its own currency, to the cent: US$61,234.50, HK$400.00 (other currencies by their code)."""
    if amount is None:
        return MISSING
    if currency == "HKD":
        return hkd(amount)
    value = _exact(amount, "A price").quantize(CENT, rounding=ROUND_HALF_UP)
    sign = MINUS if value < 0 else ""
    prefix = SYMBOLS.get(currency, f"{currency} ")
    return f"{sign}{prefix}{abs(value):,.2f}"


def _plain(value: Decimal) -> str:
    """``value``'s digits without sign or trailing zeros, in thousands: 1,000; 0.00012345 (never 1E+3)."""
    value = abs(value).normalize()
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,f}"


def quantity(amount: Decimal | int | None) -> str:
    """A quantity as held, without trailing zeros: 2.5, 0.00012345, 1,000, −2.5."""
    if amount is None:
        return MISSING
    with localcontext(prec=DIGITS):
        value = _exact(amount, "A quantity")
        digits = _plain(value)
    return f"{MINUS if value < 0 else ''}{digits}"


def price_exact(amount: Decimal | int | None, currency: str) -> str:
    """A price as recorded, to the cent or finer: US$70,000.00, HK$0.245, US$61,234.5678. For the pages
    that audit a sale, where the slippage shown is worked out from these very prices."""
    if amount is None:
        return MISSING
    with localcontext(prec=DIGITS):
        value = _exact(amount, "A price")
        shown = value.quantize(CENT) if value == value.quantize(CENT) else value.normalize()
    sign = MINUS if shown < 0 else ""
    prefix = SYMBOLS.get(currency, f"{currency} ")
    return f"{sign}{prefix}{abs(shown):,f}"


def shock(change: Decimal | int | str | None) -> str:
    """A scenario's relative change as an exact signed percentage: "-0.396" → "−39.6%", "+0.005" → "+0.5%".
    A shock is kept as text in a scenario's JSON, so text is read too (exactly; never a float)."""
    if change is None:
        return MISSING
    with localcontext(prec=DIGITS):
        value = _exact(Decimal(change) if isinstance(change, str) else change, "A shock")
        digits = _plain(value * 100)
    sign = MINUS if value < 0 else "+" if value > 0 else ""
    return f"{sign}{digits}%"


def ratio_or_infinite(ratio: Decimal | int | None) -> str:
    """A margin ratio kept as None where it is infinite (a debt with no margin value against it): ∞."""
    return "∞" if ratio is None else percent(ratio)


def hk_time(moment: datetime.datetime | None) -> str:
    """An aware datetime in Hong Kong time, to the minute: "2026-12-06 12:00 HKT"."""
    if moment is None:
        return MISSING
    if not isinstance(moment, datetime.datetime):
        raise TypeError(f"hk_time formats a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("hk_time needs an aware datetime: a naive one has no known time zone")
    local = moment.astimezone(HONG_KONG)
    # Translators: the abbreviation after a time in Hong Kong time, as in "2026-12-06 12:00 HKT".
    zone = gettext("HKT")
    return f"{local:%Y-%m-%d %H:%M} {zone}"
