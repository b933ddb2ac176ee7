"""Pure money math for lending: interest, repayment allocation and where a ratio stands on the ladder."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import NamedTuple

from collateral.calculations import WIDE, ratio_above, ratio_at_or_above
from core.money import CENT, ZERO
from financing.enums import MarginStatus

DAYS_IN_YEAR = Decimal(365)


def interest_for_days(principal: Decimal, annual_rate: Decimal, days: int) -> Decimal:
    """ACT/365: principal × rate × days / 365, rounded half-up to the cent."""
    if days < 0:
        raise ValueError("days cannot be negative")
    return interest_day_by_day([(principal, annual_rate)] * days)


def interest_day_by_day(days: list[tuple[Decimal, Decimal]]) -> Decimal:
    """ACT/365 over a run of days, each with the principal outstanding at its end and its annual rate: the
    sum of principal × rate / 365, rounded half-up to the cent once for the whole run."""
    with localcontext(prec=WIDE):
        total = sum((principal * rate for principal, rate in days), ZERO)
        return (total / DAYS_IN_YEAR).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Allocation:
    to_fees: Decimal
    to_interest: Decimal
    to_principal: Decimal

    @property
    def total(self) -> Decimal:
        return self.to_fees + self.to_interest + self.to_principal


def allocate_repayment(
    amount: Decimal, *, fees: Decimal, interest: Decimal, principal: Decimal
) -> Allocation:
    """Unpaid fees first, then accrued interest, then principal. Never more than is owed."""
    if amount > fees + interest + principal:
        raise ValueError("repayment exceeds the debt")
    to_fees = min(amount, max(fees, ZERO))
    rest = amount - to_fees
    to_interest = min(rest, max(interest, ZERO))
    rest -= to_interest
    return Allocation(to_fees=to_fees, to_interest=to_interest, to_principal=rest)


@dataclass(frozen=True)
class Thresholds:
    max_advance: Decimal
    warning: Decimal
    margin_call: Decimal
    forced_sale: Decimal
    target: Decimal


def margin_status(debt: Decimal, margin_value: Decimal, thresholds: Thresholds) -> MarginStatus:
    """Warning and forced sale trigger at or above their threshold; a margin call strictly above its own."""
    if debt <= 0:
        return MarginStatus.NO_DEBT
    if ratio_at_or_above(debt, margin_value, thresholds.forced_sale):
        return MarginStatus.FORCED_SALE
    if ratio_above(debt, margin_value, thresholds.margin_call):
        return MarginStatus.MARGIN_CALL
    if ratio_at_or_above(debt, margin_value, thresholds.warning):
        return MarginStatus.WARNING
    return MarginStatus.OK


class MarginFigures(NamedTuple):
    """A facility's valuation at one moment: what the sweep stores on its margin state, and the ladder acts on."""

    market_value: Decimal
    margin_value: Decimal
    debt: Decimal
    margin_ratio: Decimal | None
    status: str

    @classmethod
    def of(cls, valuation) -> MarginFigures:
        """The figures of a ``financing.selectors.FacilityValuation``."""
        return cls(
            valuation.market_value,
            valuation.margin_value,
            valuation.debt.total,
            valuation.margin_ratio,
            str(valuation.status),
        )


class FacilityFigures(NamedTuple):
    """``MarginFigures`` with the facility they are of: a row of a valuation of many facilities."""

    facility_id: int
    market_value: Decimal
    margin_value: Decimal
    debt: Decimal
    margin_ratio: Decimal | None
    status: str

    @property
    def figures(self) -> MarginFigures:
        return MarginFigures(*self[1:])


def figures_worth_writing(
    before: MarginFigures,
    after: MarginFigures,
    *,
    target: Decimal,
    step: Decimal,
    written_at,
    stale_before,
) -> bool:
    """Whether a sweep writes ``after`` over the margin state ``before`` (written at ``written_at``): when the
    status or the debt changed, when the ratio crossed the policy's ``target`` (what cures a call), when the
    ratio moved by more than ``step`` (or to or from infinite), or, for any other change, once the state is
    older than ``stale_before``. Every crossing the ladder acts on is a status change or a target crossing,
    so it is written at once; what is left unwritten is a drift within the step. ``sweep.sql`` applies the
    same rule (``writes``)."""
    if before.status != after.status or before.debt != after.debt:
        return True
    if (before.debt <= target * before.margin_value) != (after.debt <= target * after.margin_value):
        return True
    if (before.margin_ratio is None) != (after.margin_ratio is None):
        return True
    if before.margin_ratio is not None and abs(after.margin_ratio - before.margin_ratio) > step:
        return True
    return before != after and written_at <= stale_before


def snapshot_worth_taking(before: MarginFigures, after: MarginFigures) -> bool:
    """Of the figures written (``figures_worth_writing``), those whose ratio or status moved are kept in the
    history as a snapshot: a change of market value alone moves nothing a chart or statement shows."""
    return before.margin_ratio != after.margin_ratio or before.status != after.status
