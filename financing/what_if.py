"""What moves a facility's margin ratio, as pure functions over the sweep's own valuation (``pool_valuation``,
``margin_status``): the ratio under price shocks, and the price of one asset at which a threshold is reached
with everything else unchanged. No ORM, no I/O: the portal, the console and tests share them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import NamedTuple

from collateral.calculations import (
    WIDE,
    Cure,
    PositionInput,
    cure_amounts,
    margin_ratio,
    pool_valuation,
    ratio_above,
    ratio_at_or_above,
)
from core.money import CENT, ZERO
from financing.calculations import Thresholds, margin_status
from financing.enums import MarginStatus

SECURITIES = "securities"  # the shock key for every security in the pool (Hong Kong equities)


def shocked(positions: Sequence[PositionInput], shocks: dict[str, Decimal]) -> list[PositionInput]:
    """The positions with their prices moved by ``shocks``: symbol → fraction (``Decimal("-0.30")`` is a 30%
    fall), and ``SECURITIES`` → fraction for every security. Cash and unshocked assets are unchanged."""
    moved = []
    for p in positions:
        shock = shocks.get(p.symbol)
        if shock is None and p.kind == "security":
            shock = shocks.get(SECURITIES)
        if shock is None or p.price is None:
            moved.append(p)
            continue
        with localcontext(prec=WIDE):
            price = p.price * (1 + shock)
        moved.append(dataclasses.replace(p, price=max(price, ZERO)))
    return moved


class Outcome(NamedTuple):
    """A facility valued on some positions: what the sweep would store, and what would cure a call."""

    market_value: Decimal
    margin_value: Decimal
    debt: Decimal
    margin_ratio: Decimal | None
    status: MarginStatus
    cure: Cure  # a repayment, or a cash top-up, that brings the ratio to target (zero when at or below it)


def outcome(positions: Sequence[PositionInput], *, debt: Decimal, thresholds: Thresholds) -> Outcome:
    valuation = pool_valuation(positions)
    return Outcome(
        market_value=valuation.market_value,
        margin_value=valuation.margin_value,
        debt=debt,
        margin_ratio=margin_ratio(debt, valuation.margin_value),
        status=margin_status(debt, valuation.margin_value, thresholds),
        cure=cure_amounts(debt, valuation.margin_value, thresholds.target),
    )


class Trigger(NamedTuple):
    """Where one threshold is reached by one asset's price alone. ``price`` is the highest price (to the
    cent, in the asset's price currency) at which it is reached; None with ``already`` when it is reached at
    today's price, None without it when no price of this asset would reach it (the rest of the pool covers
    the debt, or there is no debt)."""

    price: Decimal | None
    already: bool
    change: Decimal | None  # price / today's price − 1: the fall that would reach it (negative)


def trigger_price(
    positions: Sequence[PositionInput],
    symbol: str,
    *,
    debt: Decimal,
    threshold: Decimal,
    strictly_above: bool = False,
) -> Trigger:
    """The price of ``symbol`` at which the margin ratio reaches ``threshold`` (``>`` with ``strictly_above``,
    as a margin call; ``>=`` otherwise, as a warning or a forced sale), every other price unchanged.

    Margin value never rises when a price falls, so "reached" holds for every price at or below the answer:
    the closed form ``(D/T − LV_rest) / (q · fx · (1 − h))`` is the first guess, and each guess is checked
    by valuing the whole pool exactly as the sweep does (concentration limits make the closed form only
    approximate); when the guess is off, a search in cents finds the exact price."""
    position = next((p for p in positions if p.symbol == symbol), None)
    if debt <= 0 or position is None or position.price is None or position.fx_to_hkd is None:
        return Trigger(None, False, None)
    current = position.price

    def reached(price: Decimal) -> bool:
        valued = pool_valuation(
            [dataclasses.replace(p, price=price) if p is position else p for p in positions]
        )
        if strictly_above:
            return ratio_above(debt, valued.margin_value, threshold)
        return ratio_at_or_above(debt, valued.margin_value, threshold)

    if reached(current):
        return Trigger(None, True, None)
    if not reached(ZERO):
        return Trigger(None, False, None)
    low, high = 0, int((current / CENT).to_integral_value(rounding=ROUND_CEILING))  # cents: reached, not
    guess = _closed_form(positions, position, debt=debt, threshold=threshold)
    if guess is not None and 0 < guess < high:
        if reached(guess * CENT):
            low = guess
            if not reached((guess + 1) * CENT):
                high = guess + 1
        else:
            high = guess
    while high - low > 1:
        middle = (low + high) // 2
        if reached(middle * CENT):
            low = middle
        else:
            high = middle
    price = low * CENT
    with localcontext(prec=WIDE):
        change = (price / current - 1).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR)
    return Trigger(price, False, change)


def _closed_form(
    positions: Sequence[PositionInput], position: PositionInput, *, debt: Decimal, threshold: Decimal
) -> int | None:
    """The closed-form trigger price in cents (rounded down), ignoring concentration limits."""
    if not position.eligible or position.haircut >= 1 or position.quantity <= 0 or threshold <= 0:
        return None
    rest = pool_valuation([p for p in positions if p is not position]).margin_value
    with localcontext(prec=WIDE):
        per_unit_of_price = position.quantity * position.fx_to_hkd * (1 - position.haircut)
        price = (debt / threshold - rest) / per_unit_of_price
    if price <= 0:
        return None
    return int((price / CENT).to_integral_value(rounding=ROUND_FLOOR))


def ladder_triggers(
    positions: Sequence[PositionInput], symbol: str, *, debt: Decimal, thresholds: Thresholds
) -> dict[str, Trigger]:
    """The prices of ``symbol`` at which a warning, a margin call and a forced sale would come."""
    return {
        MarginStatus.WARNING: trigger_price(positions, symbol, debt=debt, threshold=thresholds.warning),
        MarginStatus.MARGIN_CALL: trigger_price(
            positions, symbol, debt=debt, threshold=thresholds.margin_call, strictly_above=True
        ),
        MarginStatus.FORCED_SALE: trigger_price(
            positions, symbol, debt=debt, threshold=thresholds.forced_sale
        ),
    }
