"""The numbers of the business as pure functions over ``Decimal`` (no ORM, no I/O), so that the services,
the API and the sweep's checks share them and tests can be exhaustive (docs/design.md, "The numbers")."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from core.money import CENT, ZERO, places

WIDE = 80  # digits: products of 18-place quantities and 10-place prices stay exact
RATIO_PLACES = Decimal("0.00000001")


@dataclass(frozen=True)
class PositionInput:
    symbol: str
    quantity: Decimal
    price: Decimal | None  # in the asset's price currency; None when there is no price
    fx_to_hkd: Decimal | None  # HKD per unit of the price currency
    haircut: Decimal
    concentration_limit: Decimal | None = None
    eligible: bool = True
    lot_size: Decimal = Decimal(1)
    decimals: int = 0
    kind: str = "security"


@dataclass(frozen=True)
class PositionValue:
    symbol: str
    quantity: Decimal
    market_value: Decimal
    margin_value: Decimal
    excess_over_limit: Decimal  # market value above the concentration limit, which gets no margin value
    priced: bool


@dataclass(frozen=True)
class PoolValuation:
    positions: tuple[PositionValue, ...]
    market_value: Decimal
    margin_value: Decimal

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(p.symbol for p in self.positions if not p.priced)


def market_value(quantity: Decimal, price: Decimal, fx_to_hkd: Decimal) -> Decimal:
    """MV = quantity × price × fx, to the cent (half-up)."""
    with localcontext(prec=WIDE):
        return (quantity * price * fx_to_hkd).quantize(CENT, rounding=ROUND_HALF_UP)


def pool_valuation(positions: Iterable[PositionInput]) -> PoolValuation:
    """Market and margin value of a pool. A position without a price or FX rate counts for nothing
    (prudent), and is reported so the caller can say why. An ineligible asset has no margin value.
    A concentration limit caps the market value that earns margin value at limit × the pool's total."""
    positions = [p for p in positions if p.quantity != 0]
    with localcontext(prec=WIDE):
        market_values = {}
        for p in positions:
            priced = p.price is not None and p.fx_to_hkd is not None
            market_values[p.symbol] = market_value(p.quantity, p.price, p.fx_to_hkd) if priced else ZERO
        total_mv = sum(market_values.values(), ZERO)
        values = []
        for p in positions:
            mv = market_values[p.symbol]
            counted = mv
            if p.concentration_limit is not None and total_mv > 0:
                counted = min(mv, p.concentration_limit * total_mv)
            lv = (counted * (1 - p.haircut)).quantize(CENT, rounding=ROUND_FLOOR) if p.eligible else ZERO
            values.append(
                PositionValue(
                    symbol=p.symbol,
                    quantity=p.quantity,
                    market_value=mv,
                    margin_value=max(lv, ZERO),
                    excess_over_limit=(mv - counted).quantize(CENT, rounding=ROUND_HALF_UP),
                    priced=p.price is not None and p.fx_to_hkd is not None,
                )
            )
    return PoolValuation(
        positions=tuple(values),
        market_value=total_mv,
        margin_value=sum((v.margin_value for v in values), ZERO),
    )


def margin_ratio(debt: Decimal, margin_value: Decimal) -> Decimal | None:
    """R = D / LV, to eight places (half-up). None means infinite: debt and no margin value."""
    if debt <= 0:
        return ZERO
    if margin_value <= 0:
        return None
    with localcontext(prec=WIDE):
        return (debt / margin_value).quantize(RATIO_PLACES, rounding=ROUND_HALF_UP)


def market_ltv(debt: Decimal, market_value_total: Decimal) -> Decimal | None:
    if debt <= 0:
        return ZERO
    if market_value_total <= 0:
        return None
    with localcontext(prec=WIDE):
        return (debt / market_value_total).quantize(RATIO_PLACES, rounding=ROUND_HALF_UP)


def ratio_above(debt: Decimal, margin_value: Decimal, threshold: Decimal) -> bool:
    """R > threshold, decided exactly (D > T·LV), with infinite R above everything."""
    if debt <= 0:
        return False
    with localcontext(prec=WIDE):
        return debt > threshold * margin_value


def ratio_at_or_above(debt: Decimal, margin_value: Decimal, threshold: Decimal) -> bool:
    if debt <= 0:
        return False
    with localcontext(prec=WIDE):
        return debt >= threshold * margin_value


def margin_surplus(debt: Decimal, margin_value: Decimal) -> Decimal:
    return margin_value - debt


def margin_deficiency(debt: Decimal, margin_value: Decimal) -> Decimal:
    return max(debt - margin_value, ZERO)


@dataclass(frozen=True)
class Cure:
    repayment: Decimal  # a repayment of this much brings R to target
    cash_top_up: Decimal  # or a cash collateral top-up of this much (cash has no haircut)


def cure_amounts(debt: Decimal, margin_value: Decimal, target: Decimal) -> Cure:
    """What brings R down to ``target``: repay D − T·LV, or top up cash D/T − LV; rounded up to the cent.
    Zero when R is already at or below target."""
    if not ratio_above(debt, margin_value, target):
        return Cure(ZERO, ZERO)
    with localcontext(prec=WIDE):
        repayment = (debt - target * margin_value).quantize(CENT, rounding=ROUND_CEILING)
        top_up = (debt / target - margin_value).quantize(CENT, rounding=ROUND_CEILING)
    return Cure(repayment=repayment, cash_top_up=top_up)


def max_additional_debt(debt: Decimal, margin_value: Decimal, max_advance: Decimal) -> Decimal:
    """How much more may be lent before R passes max advance (never negative), rounded down to the cent."""
    with localcontext(prec=WIDE):
        room = (max_advance * margin_value - debt).quantize(CENT, rounding=ROUND_FLOOR)
    return max(room, ZERO)


# --- forced sale --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedSale:
    symbol: str
    quantity: Decimal
    market_value: Decimal  # HKD at the valuation price
    proceeds: Decimal  # market value less the sale cost allowance


@dataclass(frozen=True)
class SalePlan:
    sales: tuple[PlannedSale, ...]
    debt_after: Decimal
    margin_value_after: Decimal
    ratio_after: Decimal | None
    shortfall: Decimal  # debt left when the whole pool is sold and does not cover it
    reaches_target: bool
    skipped: tuple[str, ...] = field(
        default_factory=tuple
    )  # positions with no price: cannot be sold on value


def default_sale_order(positions: Sequence[PositionInput]) -> list[str]:
    """Most liquid first: BTC, ETH, then securities by haircut (lowest first), then anything else."""
    crypto_rank = {"BTC": 0, "ETH": 1}

    def key(p: PositionInput):
        if p.kind == "crypto":
            return (0, crypto_rank.get(p.symbol, 9), p.haircut, p.symbol)
        if p.kind == "security":
            return (1, 0, p.haircut, p.symbol)
        return (2, 0, p.haircut, p.symbol)

    return [p.symbol for p in sorted(positions, key=key)]


def _round_up_to_lot(quantity: Decimal, lot: Decimal) -> Decimal:
    with localcontext(prec=WIDE):
        lots = (quantity / lot).to_integral_value(rounding=ROUND_CEILING)
        return lots * lot


def _state_after(
    positions: dict[str, PositionInput], sold: dict[str, Decimal], debt: Decimal, sale_cost: Decimal
) -> tuple[Decimal, Decimal]:
    """Debt and margin value after selling ``sold`` (quantities), valued exactly as the pool is."""
    remaining = [
        PositionInput(**{**p.__dict__, "quantity": p.quantity - sold.get(p.symbol, ZERO)})
        for p in positions.values()
    ]
    valuation = pool_valuation(remaining)
    proceeds = sum((_proceeds(positions[s], q, sale_cost) for s, q in sold.items()), ZERO)
    return debt - proceeds, valuation.margin_value


def _proceeds(p: PositionInput, quantity: Decimal, sale_cost: Decimal) -> Decimal:
    with localcontext(prec=WIDE):
        mv = market_value(quantity, p.price, p.fx_to_hkd)
        return (mv * (1 - sale_cost)).quantize(CENT, rounding=ROUND_FLOOR)


def forced_sale_plan(
    positions: Sequence[PositionInput],
    *,
    debt: Decimal,
    target: Decimal,
    sale_cost: Decimal,
    order: Sequence[str] | None = None,
) -> SalePlan:
    """The sales that bring R to ``target``, in ``order``, each no more than needed, in whole lots.

    For one asset with haircut h and sale cost s, selling market value x changes D → D − x(1 − s) and
    LV → LV − x(1 − h), so x ≥ (D − T·LV) / ((1 − s) − T(1 − h)). A concentration limit makes margin
    value non-linear in x, so the formula gives the first guess (with the position's effective haircut)
    and the quantity is then checked by revaluing the pool, searching in whole lots. When the whole pool
    is sold and debt remains, the rest is the shortfall.
    """
    by_symbol = {p.symbol: p for p in positions if p.quantity > 0}
    sellable = {s: p for s, p in by_symbol.items() if p.price is not None and p.fx_to_hkd is not None}
    skipped = tuple(sorted(set(by_symbol) - set(sellable)))
    sequence = [s for s in (order or default_sale_order(list(sellable.values()))) if s in sellable]
    sequence += [s for s in default_sale_order(list(sellable.values())) if s not in sequence]

    sold: dict[str, Decimal] = {}
    current_debt, current_lv = _state_after(by_symbol, sold, debt, sale_cost)
    for symbol in sequence:
        if current_debt <= 0 or not ratio_above(current_debt, current_lv, target):
            break
        sold[symbol] = _quantity_to_reach_target(by_symbol, sold, symbol, debt, target, sale_cost)
        current_debt, current_lv = _state_after(by_symbol, sold, debt, sale_cost)

    sales = []
    for symbol, quantity in sold.items():
        p = by_symbol[symbol]
        mv = market_value(quantity, p.price, p.fx_to_hkd)
        sales.append(PlannedSale(symbol, quantity, mv, _proceeds(p, quantity, sale_cost)))
    everything_sold = all(sold.get(s, ZERO) >= p.quantity for s, p in sellable.items()) and not skipped
    reaches = not ratio_above(current_debt, current_lv, target)
    shortfall = current_debt if (everything_sold and current_debt > 0) else ZERO
    return SalePlan(
        sales=tuple(sales),
        debt_after=current_debt,
        margin_value_after=current_lv,
        ratio_after=margin_ratio(current_debt, current_lv),
        shortfall=max(shortfall, ZERO),
        reaches_target=reaches,
        skipped=skipped,
    )


def _quantity_to_reach_target(
    positions: dict[str, PositionInput],
    sold: dict[str, Decimal],
    symbol: str,
    debt: Decimal,
    target: Decimal,
    sale_cost: Decimal,
) -> Decimal:
    """The least whole-lot quantity of ``symbol`` (up to all of it) after which R <= target."""
    p = positions[symbol]
    held = p.quantity
    lot = p.lot_size

    def reaches(quantity: Decimal) -> bool:
        d, lv = _state_after(positions, {**sold, symbol: quantity}, debt, sale_cost)
        return d <= 0 or not ratio_above(d, lv, target)

    if not reaches(held):
        return held
    least = _least_quantity(positions, sold, symbol, debt, target, sale_cost, reaches)
    if least is not None:
        return least
    # First guess from the closed form, with the position's effective haircut.
    d0, lv0 = _state_after(positions, sold, debt, sale_cost)
    valuation = pool_valuation([p])
    mv = valuation.market_value
    effective_haircut = 1 - (valuation.margin_value / mv) if mv > 0 else Decimal(1)
    with localcontext(prec=WIDE):
        denominator = (1 - sale_cost) - target * (1 - effective_haircut)
        unit_value = p.price * p.fx_to_hkd
        if denominator > 0 and unit_value > 0:
            guess = _round_up_to_lot(((d0 - target * lv0) / denominator) / unit_value, lot)
        else:
            guess = held
    guess = min(max(guess, lot), held)
    # Search whole lots between low (does not reach the target) and high (does). The guess is usually
    # exact; with a concentration limit it can be generous or short, and the search corrects it.
    low, high = (ZERO, guess) if reaches(guess) else (guess, held)
    with localcontext(prec=WIDE):
        low_lots = (low / lot).to_integral_value(rounding=ROUND_DOWN)
        high_lots = (high / lot).to_integral_value(rounding=ROUND_CEILING)
        while high_lots - low_lots > 1:
            middle = (low_lots + high_lots) // 2
            if reaches(middle * lot):
                high_lots = middle
            else:
                low_lots = middle
        return min(high_lots * lot, held)


# The exact search in cents (``_least_quantity``) is used when selling one unit of market value
# lowers D − T·LV by at least this much (below it, the window of candidates grows as its inverse) …
LEAST_SEARCH_MIN_SLOPE = Decimal("0.01")
# … and when its window holds at most this many candidates; otherwise the search in whole lots.
LEAST_SEARCH_MAX_CANDIDATES = 2000


@dataclass(frozen=True)
class LeastSearch:
    """The exact search for the least whole-lot sale of one position when no concentration cut binds: every
    figure in cents. ``debt`` and ``others`` (the margin value of the rest of the pool) are the state before
    this sale; ``held`` the quantity, ``unit`` its HKD value per unit, ``lot`` its lot size."""

    debt: Decimal
    others: Decimal
    held: Decimal
    unit: Decimal
    lot: Decimal
    haircut: Decimal
    eligible: bool
    sale_cost: Decimal
    target: Decimal
    # With the rest of the pool (``rest``: its market value in cents; ``pool``: (market value in cents, limit,
    # haircut) of each eligible position) and this position's own limit, the search starts where a sale
    # could first reach the target with every concentration cut in place (``cut_floor``).
    rest: Decimal | None = None
    limit: Decimal | None = None
    pool: tuple = ()

    def _bound(self, cents: Decimal) -> Decimal:
        """D − c(1 − s) − T × (the margin value with at most 100·H·u − c + 1 cents left, no cent rounded
        down): at most what a sale of c cents leaves of D − T·LV. Convex in c."""
        left = max(100 * self.held * self.unit - cents + 1, ZERO)
        pool = self.rest + left
        value = ZERO
        for mv, limit, haircut in self.pool:
            value += (mv if limit is None else min(mv, limit * pool)) * (1 - haircut)
        if self.eligible:
            value += (left if self.limit is None else min(left, self.limit * pool)) * (1 - self.haircut)
        return self.debt - cents * (1 - self.sale_cost) - self.target * value

    def cut_floor(self, low: int) -> int:
        """The least cent value from ``low`` at which a sale could reach the target with the cuts in place
        (``_bound`` at or below zero), by bisection: the bound is convex and at or below zero when all is sold
        (which reaches the target), so it crosses zero once on the way there."""
        if self.rest is None:
            return low
        with localcontext(prec=WIDE):
            high = (100 * self.held * self.unit).to_integral_value(rounding=ROUND_HALF_UP)
            low_cents = Decimal(low)
            if high <= low_cents or self._bound(low_cents) <= 0 or self._bound(high) > 0:
                return low
            while high - low_cents > 1:  # the bound is above zero at low_cents, at or below at high
                middle = (low_cents + high) // 2
                if self._bound(middle) <= 0:
                    high = middle
                else:
                    low_cents = middle
            return int(high)

    @property
    def slope(self) -> Decimal:
        """β = (1 − s) − T(1 − h): how much D − T·LV falls per unit of market value sold (no cut binding)."""
        return (1 - self.sale_cost) - self.target * (1 - self.haircut if self.eligible else 0)

    def lots_held(self) -> Decimal:
        with localcontext(prec=WIDE):
            return (self.held / self.lot).to_integral_value(rounding=ROUND_CEILING)

    def reaches(self, lots: Decimal) -> tuple[bool, Decimal, Decimal, Decimal]:
        """Whether selling ``lots`` lots (at most all of it) brings R to target; the quantity, the cents sold
        (market value) and the cents of proceeds."""
        with localcontext(prec=WIDE):
            quantity = min(lots * self.lot, self.held)
            sold = (100 * quantity * self.unit).to_integral_value(rounding=ROUND_HALF_UP)
            left = (100 * (self.held - quantity) * self.unit).to_integral_value(rounding=ROUND_HALF_UP)
            proceeds = (sold * (1 - self.sale_cost)).to_integral_value(rounding=ROUND_FLOOR)
            kept = (left * (1 - self.haircut)).to_integral_value(rounding=ROUND_FLOOR) if self.eligible else 0
            return self.debt - proceeds <= self.target * (self.others + kept), quantity, sold, proceeds

    def window(self) -> tuple[str, int, int]:
        """The candidates that hold the least reaching lot count: ``("cents", a, b)`` — for each cent value c
        in a..b of the market value sold, the least lot count that sells at least c — or ``("lots", a, b)``,
        every lot count from a to b, whichever is fewer. Below ``a`` nothing reaches the target: with the
        proceeds at most c(1 − s) and the margin value left at most (1 − h)(100·H·u − c + 1), reaching needs
        c·β ≥ D − T·LV₀ − T(1 − h)(100·H·u + 1); at ``b`` it is reached (the same bounds the other way,
        widened by the lot's value). One more each side for the divisions' rounding."""
        with localcontext(prec=WIDE):
            kept = self.target * (1 - self.haircut) if self.eligible else Decimal(0)
            full = 100 * self.held * self.unit
            lot_value = 100 * self.unit * self.lot
            low = (self.debt - self.target * self.others - kept * (full + 1)) / self.slope
            high = (self.debt + 1 - self.target * self.others + (self.target if self.eligible else 0)
                    - kept * (full - lot_value)) / self.slope  # fmt: skip
            cents_low = max(low.to_integral_value(rounding=ROUND_FLOOR) - 1, Decimal(0))
            cents_high = max(high.to_integral_value(rounding=ROUND_CEILING) + 1, cents_low)
            lots_low = max(
                ((cents_low - Decimal("0.5")) / lot_value).to_integral_value(rounding=ROUND_FLOOR), 1
            )
            lots_high = ((cents_high - Decimal("0.5")) / lot_value).to_integral_value(
                rounding=ROUND_CEILING
            ) + 1
            lots_high = max(min(lots_high, self.lots_held()), lots_low)
        if cents_high - cents_low <= lots_high - lots_low:
            return "cents", int(cents_low), int(cents_high)
        return "lots", int(lots_low), int(lots_high)

    def candidates(self):
        """The lot counts to try, in increasing order: the window's, then on past its top (a concentration cut
        can bend the margin value below the window's bound), at most ``LEAST_SEARCH_MAX_CANDIDATES`` in all."""
        mode, low, _ = self.window()
        held_lots = self.lots_held()
        tried = 0
        floor = self.cut_floor(low if mode == "cents" else 0) - 1
        if mode == "lots":
            with localcontext(prec=WIDE):
                lots_floor = ((floor - Decimal("0.5")) / (100 * self.unit * self.lot)).to_integral_value(
                    rounding=ROUND_FLOOR
                )
            low = max(low, int(lots_floor))
            lots = Decimal(low)
            while tried < LEAST_SEARCH_MAX_CANDIDATES and lots <= held_lots:
                yield lots
                lots += 1
                tried += 1
            return
        previous = None
        cents = max(low, floor)
        with localcontext(prec=WIDE):
            lot_value = 100 * self.unit * self.lot
            while tried < LEAST_SEARCH_MAX_CANDIDATES and previous != held_lots:
                lots = ((cents - Decimal("0.5")) / lot_value).to_integral_value(rounding=ROUND_CEILING)
                lots = min(max(lots, Decimal(1)), held_lots)
                if lots != previous:
                    previous = lots
                    tried += 1
                    yield lots
                # The next cent value that needs one lot more (a lot may be worth many cents).
                cents = max(
                    cents + 1, (lots * lot_value + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR) + 1
                )

    def least(self, reaches=None) -> Decimal | None:
        """The least whole-lot quantity that reaches the target (by ``reaches(lots)``, the pool valued exactly;
        by default with no cut binding), or None when this search does not apply (too flat a slope, too wide a
        window) or finds none in its window."""
        if self.slope < LEAST_SEARCH_MIN_SLOPE or self.unit <= 0:
            return None
        _, low, high = self.window()
        if high - low + 1 > LEAST_SEARCH_MAX_CANDIDATES:
            return None
        for lots in self.candidates():
            if reaches is None:
                reached, quantity, _, _ = self.reaches(lots)
            else:
                reached, quantity = reaches(lots), min(lots * self.lot, self.held)
            if reached:
                return quantity
        return None


def _least_quantity(
    positions: dict[str, PositionInput],
    sold: dict[str, Decimal],
    symbol: str,
    debt: Decimal,
    target: Decimal,
    sale_cost: Decimal,
    reaches,
) -> Decimal | None:
    """The least whole-lot quantity of ``symbol`` after which R <= target (``reaches``, the pool valued
    exactly), when selling all of it does; None when the search does not apply (the caller bisects).

    The state after selling q depends only on the cents sold, round(q·u), and the cents left, round((H − q)·u):
    the debt falls with the first; the margin value rises with the second, cuts and all (more left is more
    pool). For each cent value sold the least quantity that sells it leaves the most, so the least reaching
    quantity is the least quantity of the least reaching cent value. Without cuts the margin value is at most
    its value uncut, which bounds from below the cents a reaching sale needs: a window of a few cents
    (``LeastSearch.window``), its candidates tried in order, each valued exactly. The rounding to the cent
    makes R wobble near the target, so that a bisection finds *a* quantity after which R <= target, not always
    the least; this one is exact, and what the stress test's SQL does (oversight/stress.sql)."""
    p = positions[symbol]
    with localcontext(prec=WIDE):
        kept, rest, pool = ZERO, ZERO, []
        for s, other in positions.items():
            quantity = other.quantity - sold.get(s, ZERO)
            if s == symbol or quantity == 0 or other.price is None or other.fx_to_hkd is None:
                continue
            mv = market_value(quantity, other.price, other.fx_to_hkd)
            rest += 100 * mv
            if other.eligible:
                kept += max((mv * (1 - other.haircut)).quantize(CENT, rounding=ROUND_FLOOR), ZERO)
                pool.append((100 * mv, other.concentration_limit, other.haircut))
        proceeds = sum((_proceeds(positions[s], q, sale_cost) for s, q in sold.items() if s != symbol), ZERO)
        search = LeastSearch(
            debt=(debt - proceeds) * 100, others=kept * 100, held=p.quantity, unit=p.price * p.fx_to_hkd,
            lot=p.lot_size, haircut=p.haircut, eligible=p.eligible, sale_cost=sale_cost, target=target,
            rest=rest, limit=p.concentration_limit, pool=tuple(pool),
        )  # fmt: skip
    return search.least(lambda lots: reaches(min(lots * p.lot_size, p.quantity)))


def quantity_from_value(value_hkd: Decimal, price: Decimal, fx_to_hkd: Decimal, decimals: int) -> Decimal:
    """How much of an asset is worth ``value_hkd``, rounded up to the asset's decimals."""
    with localcontext(prec=WIDE):
        return (value_hkd / (price * fx_to_hkd)).quantize(places(decimals), rounding=ROUND_CEILING)


# --- automatic top-up ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedTransfer:
    symbol: str
    quantity: Decimal  # moved from the free holdings into the pool, at the asset's decimals
    market_value: Decimal  # HKD at the valuation price


@dataclass(frozen=True)
class SkippedHolding:
    symbol: str
    reason: str  # in words: why this free holding was not moved


@dataclass(frozen=True)
class TopUpPlan:
    transfers: tuple[PlannedTransfer, ...]
    debt: Decimal
    margin_value_before: Decimal
    margin_value_after: Decimal
    ratio_before: Decimal | None
    ratio_after: Decimal | None
    reaches_target: bool
    still_due: Cure  # what would still bring R to target after the transfers: zero when they do
    skipped: tuple[SkippedHolding, ...] = ()

    @property
    def moves_anything(self) -> bool:
        return bool(self.transfers)


def top_up_sequence(free: Sequence[PositionInput], order: Sequence[str]) -> list[str]:
    """The order free holdings are moved in: cash first (HKD, then the other currencies by symbol), then
    the assets the client chose, in the client's order. Anything else free is not the platform's to move."""
    held = {p.symbol: p for p in free if p.quantity > 0}
    cash = sorted((s for s, p in held.items() if p.kind == "cash"), key=lambda s: (s != "HKD", s))
    chosen = [s for s in dict.fromkeys(order) if s in held and held[s].kind != "cash"]
    return cash + chosen


def top_up_plan(
    pool: Sequence[PositionInput],
    free: Sequence[PositionInput],
    *,
    debt: Decimal,
    target: Decimal,
    order: Sequence[str],
) -> TopUpPlan:
    """The transfers from the client's free holdings into the pool that bring R to ``target``, with no more
    than needed: cash first (to the cent), then the client's chosen assets in order, each rounded up to the
    asset's decimals (a transfer, not a trade: no lots). An asset that is not eligible, has no price or FX
    rate, or would add no margin value is skipped, and said so.

    Cash has no haircut, so ``D/T − LV`` of HKD is the closed form; an asset with haircut h adds
    ``x(1 − h)`` of margin value for market value x. A concentration limit makes margin value non-linear
    (more market value in the pool also lifts every other position's cap), so the closed form is only the
    first guess: each quantity is checked by revaluing the whole pool exactly as ``pool_valuation`` does,
    and the least quantity that reaches the target is found by a search in the asset's smallest units.
    Margin value never falls when something is added, which is what makes the search sound. When all that
    may be moved is not enough, everything usable is moved and ``still_due`` says what the client owes.
    """
    in_pool = {p.symbol: p for p in pool if p.quantity != 0}
    held = {p.symbol: p for p in free if p.quantity > 0}
    sequence = top_up_sequence(list(held.values()), order)
    skipped: list[SkippedHolding] = []
    usable = []
    for symbol in sequence:
        p = held[symbol]
        if not p.eligible:
            skipped.append(SkippedHolding(symbol, "not eligible collateral"))
        elif p.price is None:
            skipped.append(SkippedHolding(symbol, "no price"))
        elif p.fx_to_hkd is None:
            skipped.append(SkippedHolding(symbol, "no FX rate to HKD"))
        else:
            usable.append(symbol)
    skipped += [
        SkippedHolding(symbol, "not in the standing instruction")
        for symbol in sorted(held)
        if symbol not in sequence
    ]

    def margin_value_with(moved: dict[str, Decimal]) -> Decimal:
        symbols = list(dict.fromkeys([*in_pool, *moved]))
        positions = []
        for symbol in symbols:
            base = in_pool.get(symbol) or held[symbol]
            quantity = (in_pool[symbol].quantity if symbol in in_pool else ZERO) + moved.get(symbol, ZERO)
            positions.append(PositionInput(**{**base.__dict__, "quantity": quantity}))
        return pool_valuation(positions).margin_value

    def reaches(margin_value: Decimal) -> bool:
        return not ratio_above(debt, margin_value, target)

    moved: dict[str, Decimal] = {}
    before = margin_value_with(moved)
    current = before
    for symbol in usable:
        if reaches(current):
            break
        p = held[symbol]
        with_all = margin_value_with({**moved, symbol: p.quantity})
        if with_all <= current:
            skipped.append(SkippedHolding(symbol, "adds no margin value"))
            continue
        if reaches(with_all):
            moved[symbol] = _least_quantity_to_reach(
                p, moved, current, debt, target, margin_value_with, reaches
            )
        else:
            moved[symbol] = p.quantity
        current = margin_value_with(moved)

    transfers = tuple(
        PlannedTransfer(symbol, quantity, market_value(quantity, held[symbol].price, held[symbol].fx_to_hkd))
        for symbol, quantity in moved.items()
    )
    return TopUpPlan(
        transfers=transfers,
        debt=debt,
        margin_value_before=before,
        margin_value_after=current,
        ratio_before=margin_ratio(debt, before),
        ratio_after=margin_ratio(debt, current),
        reaches_target=reaches(current),
        still_due=cure_amounts(debt, current, target),
        skipped=tuple(skipped),
    )


def _least_quantity_to_reach(p, moved, current, debt, target, margin_value_with, reaches) -> Decimal:
    """The least quantity of ``p`` (in its smallest unit, at most all of it) after which R <= target.
    Called only when moving all of it reaches the target and moving none does not."""
    unit = places(p.decimals)
    with localcontext(prec=WIDE):
        held_units = (p.quantity / unit).to_integral_value(rounding=ROUND_FLOOR)
        value_per_unit = p.price * p.fx_to_hkd * (1 - p.haircut) * unit
        needed = debt / target - current  # margin value still missing
        guess = (
            (needed / value_per_unit).to_integral_value(rounding=ROUND_CEILING)
            if value_per_unit > 0
            else held_units
        )
    guess = min(max(guess, Decimal(1)), held_units)

    def reaches_with(units: Decimal) -> bool:
        with localcontext(prec=WIDE):
            quantity = units * unit
        return reaches(margin_value_with({**moved, p.symbol: quantity}))

    # low never reaches the target, high always does. The guess is usually exact (then one more
    # valuation confirms that a unit less is short); with a concentration limit it can be generous or short.
    if reaches_with(guess):
        low, high = ZERO, guess
        if guess > 1 and not reaches_with(guess - 1):
            low = guess - 1
    else:
        low, high = guess, held_units
    least = _least_reaching(reaches_with, low, high)
    with localcontext(prec=WIDE):
        return (least * unit).quantize(unit)


def _least_reaching(reaches: Callable[[Decimal], bool], low: Decimal, high: Decimal) -> Decimal:
    """The least whole number of units above ``low`` and at most ``high`` for which ``reaches`` holds, by
    halving the bracket: ``reaches(low)`` is false (or ``low`` is zero), ``reaches(high)`` is true, and
    ``reaches`` never turns false as the units grow."""
    while high - low > 1:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    return high


def cash_top_up_to_target(
    pool: Sequence[PositionInput], cash: PositionInput, *, debt: Decimal, target: Decimal
) -> Decimal:
    """The least cash top-up (in ``cash``, the HKD cash asset; its quantity is ignored) that brings the pool's
    ratio to ``target``, to the cent: what a margin call states. ``D/T − LV`` is exact when no concentration
    limit binds; when one does, cash added to the pool enlarges the pool and loosens the cut, and less cash
    cures the call. The amount is ``top_up_plan``'s with this cash as the only free holding, offered at the
    closed form and doubled while short, up to 128 times it: the least amount, in the cash's smallest unit, at
    which the pool revalued exactly (``pool_valuation``) reaches the target. Zero when the ratio is at or below
    target; the closed form when no amount up to that reaches it (a limit on cash itself).

    Margin value never falls as cash is added, so the least amount is found by bracketing: from a first guess
    (the amount at which the pool's value without the cent flooring reaches the target: ``_cash_guess``), up or
    down in doubling steps until one amount reaches the target and the next unit down does not, then halving
    the bracket. The guess is usually a few units short at most, so a call costs a handful of valuations."""
    valuation = pool_valuation(pool)
    closed = cure_amounts(debt, valuation.margin_value, target).cash_top_up
    if closed <= 0:
        return ZERO
    if cash.decimals < 2 or not cash.eligible or cash.price is None or cash.fx_to_hkd is None:
        return _cash_top_up_by_plan(pool, cash, closed, debt=debt, target=target)
    unit = places(cash.decimals)
    in_pool = [p for p in pool if p.quantity != 0 and p.symbol != cash.symbol]
    held = next((p.quantity for p in pool if p.symbol == cash.symbol), ZERO)
    base = next((p for p in pool if p.symbol == cash.symbol and p.quantity != 0), cash)

    def reaches(units: Decimal) -> bool:
        with localcontext(prec=WIDE):
            quantity = held + units * unit
        moved = PositionInput(**{**base.__dict__, "quantity": quantity})
        return not ratio_above(debt, pool_valuation([*in_pool, moved]).margin_value, target)

    with localcontext(prec=WIDE):
        ceiling = (closed * 128 / unit).to_integral_value(
            rounding=ROUND_FLOOR
        )  # what the search offers at most
        guess = _cash_guess(pool, valuation, base, debt / target)
        units = ceiling if guess is None else (guess / unit).to_integral_value(rounding=ROUND_CEILING)
    units = min(max(units, Decimal(1)), ceiling)
    # low never reaches the target (no cash at all does not), high does.
    if reaches(units):
        low, high, step = ZERO, units, Decimal(1)
        while high - step > 0 and reaches(high - step):
            high -= step
            step *= 2
        low = max(high - step, ZERO)
    else:
        low, step = units, Decimal(1)
        while True:
            if low == ceiling:
                return closed  # no amount up to what the search offers reaches the target
            high = min(low + step, ceiling)
            if reaches(high):
                break
            low, step = high, step * 2
    least = _least_reaching(reaches, low, high)
    with localcontext(prec=WIDE):
        return (least * unit).quantize(unit)


def _cash_guess(
    pool: Sequence[PositionInput], valuation: PoolValuation, cash: PositionInput, needed: Decimal
) -> Decimal | None:
    """The cash at which the pool's margin value without the cent flooring, Σ (1 − h)·min(MV, limit × pool's
    MV), reaches ``needed``: Newton's steps on a concave piecewise-linear function, from below, so never past
    it and at most one step per cap that stops binding. None when added cash adds no value."""
    positions = [p for p in pool if p.quantity != 0]
    parts = [
        (
            value.market_value,
            p.concentration_limit,
            (1 - p.haircut) if p.eligible else ZERO,
            p.symbol == cash.symbol,
        )
        for p, value in zip(positions, valuation.positions, strict=True)
    ]
    if not any(is_cash for *_, is_cash in parts):
        parts.append((ZERO, cash.concentration_limit, 1 - cash.haircut, True))
    total = valuation.market_value
    x = ZERO
    with localcontext(prec=WIDE):
        for _ in range(len(parts) + 2):
            value = slope = ZERO
            for mv, limit, kept, is_cash in parts:
                own, grows = (mv + x, Decimal(1)) if is_cash else (mv, ZERO)
                if limit is None or total + x <= 0 or own < limit * (total + x):
                    value, slope = value + kept * own, slope + kept * grows
                elif own > limit * (total + x):
                    value, slope = value + kept * limit * (total + x), slope + kept * limit
                else:
                    value, slope = value + kept * own, slope + kept * min(grows, limit)
            if value >= needed:
                break
            if slope <= 0:
                return None
            x += (needed - value) / slope
    return x


def _cash_top_up_by_plan(
    pool: Sequence[PositionInput], cash: PositionInput, closed: Decimal, *, debt: Decimal, target: Decimal
) -> Decimal:
    """``top_up_plan``'s search itself, offered the closed form and doubled while short: for a cash asset the
    bracketing above does not cover (not eligible, no price or FX rate, or units coarser than a cent)."""
    offered = closed
    for _ in range(8):
        free = [PositionInput(**{**cash.__dict__, "quantity": offered, "kind": "cash"})]
        plan = top_up_plan(pool, free, debt=debt, target=target, order=[])
        if plan.reaches_target:
            return sum((t.quantity for t in plan.transfers), ZERO)
        offered *= 2
    return closed


# --- sanity checks on pushed prices and FX rates ---------------------------------------------------------


def _percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).quantize(CENT, rounding=ROUND_HALF_UP)}%"


def price_band_breach(previous: Decimal | None, value: Decimal, band: Decimal, *, unit: str) -> str | None:
    """Why ``value`` is too far from ``previous`` (the value in use) to be used unconfirmed, or None: a move
    of more than ``band`` (a fraction) either way. Nothing to compare against is no breach."""
    if previous is None or previous <= 0:
        return None
    with localcontext(prec=WIDE):
        move = (value - previous) / previous
    if abs(move) <= band:
        return None
    direction = "above" if move > 0 else "below"
    return (
        f"{value.normalize():f} is {_percent(abs(move))} {direction} the {previous.normalize():f} {unit} in use; "
        f"the band is {_percent(band)}"
    )


def peg_band_breach(value: Decimal, low: Decimal, high: Decimal, *, pair: str) -> str | None:
    """Why ``value`` is outside the peg band ``low``–``high`` of ``pair``, or None."""
    if low <= value <= high:
        return None
    return f"{value.normalize():f} is outside the {pair} peg band of {low.normalize():f}–{high.normalize():f}"
