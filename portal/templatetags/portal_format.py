"""Portal filters beyond ``web.formatting``: a price in its own currency, a quantity, a signed move."""

from decimal import ROUND_HALF_UP, Decimal

from django import template

from web.formatting import MINUS, MISSING, hkd, percent

register = template.Library()

SYMBOLS = {"HKD": "HK$", "USD": "US$"}


@register.filter
def price_in(amount: Decimal | None, currency: str) -> str:
    """A price in its own currency: US$61,234.50, HK$400.00 (other currencies by their code)."""
    if amount is None:
        return MISSING
    if currency == "HKD":
        return hkd(amount)
    value = Decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = MINUS if value < 0 else ""
    prefix = SYMBOLS.get(currency, f"{currency} ")
    return f"{sign}{prefix}{abs(value):,.2f}"


@register.filter
def quantity(amount: Decimal | None) -> str:
    """A quantity as held, without trailing zeros: 2.5, 0.00012345, 1,000."""
    if amount is None:
        return MISSING
    value = Decimal(amount).normalize()
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    return f"{value:,f}"


@register.filter
def signed_percent(fraction: Decimal | None, places: int = 1) -> str:
    """A move as a signed percentage: −30.0%, +10.0%, 0.0%."""
    if fraction is None:
        return MISSING
    text = percent(fraction, places)
    return text if fraction <= 0 else f"+{text}"
