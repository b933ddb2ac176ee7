"""Portal filters beyond ``web.formatting``: a signed move."""

from decimal import Decimal

from django import template

from web.formatting import MISSING, percent

register = template.Library()


@register.filter
def signed_percent(fraction: Decimal | None, places: int = 1) -> str:
    """A move as a signed percentage: −30.0%, +10.0%, 0.0%."""
    if fraction is None:
        return MISSING
    text = percent(fraction, places)
    return text if fraction <= 0 else f"+{text}"
