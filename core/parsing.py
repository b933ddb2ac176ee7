"""Reading amounts from the outside world (forms, API bodies, files): exact, or a clear refusal."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext
from typing import Any

from djmoney.money import Money

from core.exceptions import InvalidInput
from core.money import places, to_decimal

# The widest column (ledger quantities, 40 digits with 18 places) holds 22 digits before the point.
MAX_WHOLE_DIGITS = 22

# How an amount is written, everywhere (API, forms, files): ASCII digits with an optional point and an
# optional minus. No exponent ("1e5"), no spaces, no thousands separators, no other script's digits — all of
# which ``Decimal()`` would read without a word.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_DECIMAL_RE = re.compile(DECIMAL_PATTERN.strip("^$"))
PLAIN_DECIMAL_WORDS = "plain digits with an optional decimal point, e.g. 1250.50"


def is_plain_decimal(text: str) -> bool:
    """Whether ``text`` is an amount written as ``DECIMAL_PATTERN`` says, and nothing else."""
    return _DECIMAL_RE.fullmatch(text) is not None


def parse_amount(
    value: Any,
    *,
    field: str,
    positive: bool = False,
    decimals: int | None = None,
    unit: str = "decimal",
) -> Decimal:
    """A string, int or Decimal read exactly. Refuses floats, nonsense, infinities, negatives (or, with
    ``positive``, zero) and more than ``decimals`` places. A string must be a plain ASCII decimal."""
    if isinstance(value, str) and not is_plain_decimal(value):
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise InvalidInput(
            f"{field}: {shown!r} is not an amount ({PLAIN_DECIMAL_WORDS}).",
            details={field: ["not an amount"]},
        )
    try:
        amount = to_decimal(value)
    except TypeError as error:
        raise InvalidInput(f"{field}: {error}.", details={field: [str(error)]}) from None
    except InvalidOperation:
        raise InvalidInput(
            f"{field}: {value!r} is not an amount.", details={field: ["not an amount"]}
        ) from None
    if not amount.is_finite():
        raise InvalidInput(f"{field}: {value} is not a finite amount.", details={field: ["not finite"]})
    if positive and amount <= 0:
        raise InvalidInput(
            f"{field}: must be more than zero, not {amount}.", details={field: ["not positive"]}
        )
    if not positive and amount < 0:
        raise InvalidInput(f"{field}: cannot be negative ({amount}).", details={field: ["negative"]})
    if amount and amount.adjusted() >= MAX_WHOLE_DIGITS:
        raise InvalidInput(
            f"{field}: {amount} is too large (at most {MAX_WHOLE_DIGITS} digits before the decimal point).",
            details={field: ["too large"]},
        )
    with localcontext(prec=80):  # exact for every amount that fits the database's columns
        too_precise = decimals is not None and amount != amount.quantize(
            places(decimals), rounding=ROUND_DOWN
        )
    if too_precise:
        raise InvalidInput(
            f"{field}: {amount} has more than {decimals} decimal places{'' if unit == 'decimal' else ' for ' + unit}.",
            details={field: ["too precise"]},
        )
    return amount


def parse_hkd(value: Any, *, field: str, positive: bool = False) -> Money:
    currency = getattr(value, "currency", None)
    if currency is not None and str(currency) != "HKD":
        raise InvalidInput(f"{field}: must be in HKD, not {currency}.", details={field: ["not HKD"]})
    return Money(parse_amount(value, field=field, positive=positive, decimals=2), "HKD")


def parse_fraction(value: Any, *, field: str, allow_zero: bool = True, allow_one: bool = True) -> Decimal:
    """A share written as a decimal fraction: 0.6 is 60%. Four places at most."""
    fraction = parse_amount(value, field=field, decimals=4)
    if fraction > 1 or (fraction == 1 and not allow_one) or (fraction == 0 and not allow_zero):
        low = "0" if allow_zero else "more than 0"
        high = "1" if allow_one else "less than 1"
        raise InvalidInput(
            f"{field}: {fraction} must be between {low} and {high} (a fraction: 0.6 means 60%).",
            details={field: ["out of range"]},
        )
    return fraction
