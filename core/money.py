"""Exact decimal helpers. Quantise only at the edges, always with an explicit rounding mode."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

HKD = "HKD"  # the reporting currency, and the ledger's instrument code for it
CENT = Decimal("0.01")
ZERO = Decimal("0")
ONE = Decimal("1")


def to_decimal(value: object) -> Decimal:
    """Turn a string, int or Decimal into a Decimal. Floats are refused: they are not exact."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, float):
        raise TypeError("floats are not accepted for money or quantities; pass a string or Decimal")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        return Decimal(value)
    amount = getattr(value, "amount", None)  # djmoney Money
    if isinstance(amount, Decimal):
        return amount
    raise TypeError(f"cannot read {type(value).__name__} as a decimal amount")


def places(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


def quantize_cash(amount: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    return amount.quantize(CENT, rounding=rounding)


def quantize_up(amount: Decimal, decimals: int) -> Decimal:
    """Round towards +infinity: what is due, what must be sold."""
    return amount.quantize(places(decimals), rounding=ROUND_CEILING)


def quantize_down(amount: Decimal, decimals: int) -> Decimal:
    """Round towards -infinity: what may be lent, what is credited."""
    return amount.quantize(places(decimals), rounding=ROUND_FLOOR)


def format_hkd(amount: Decimal) -> str:
    """An HKD amount as people read it: HK$1,234,567.89."""
    return f"HK${amount:,.2f}"


def format_percent(ratio: Decimal | None) -> str:
    if ratio is None:
        return "∞"
    return f"{(ratio * 100).quantize(CENT, rounding=ROUND_HALF_UP)}%"
