"""The shock arithmetic of a stress test as pure functions over ``Decimal`` (no ORM, no I/O): which shock
applies to an asset, the shocked prices and FX rates, and the firm's figures that are only sums and shares
(docs/stress-tests.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from collateral.calculations import WIDE
from core.money import ZERO

SHOCKABLE_CLASSES = ("crypto", "security")
SHARE_PLACES = Decimal("0.0001")
# A shock is a relative change: −100% would leave no price at all, and a tenfold rise is no stress test.
LOWEST_SHOCK = Decimal("-1")
HIGHEST_SHOCK = Decimal("10")


@dataclass(frozen=True)
class Shocks:
    """Relative changes: per asset symbol, per asset class and per FX pair (currency, quote)."""

    assets: Mapping[str, Decimal] = field(default_factory=dict)
    classes: Mapping[str, Decimal] = field(default_factory=dict)
    fx: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)

    def for_asset(self, symbol: str, kind: str) -> Decimal:
        """An asset's own shock wins over its class's; no shock is a change of zero. Cash moves only with
        its FX rate."""
        if symbol in self.assets:
            return self.assets[symbol]
        return self.classes.get(kind, ZERO)

    def as_json(self) -> dict[str, str]:
        """The flat form scenarios are written in: ``{"BTC": "-0.40", "crypto": "-0.5", "USD/HKD": "0.005"}``."""
        flat = {**self.classes, **self.assets, **{f"{c}/{q}": v for (c, q), v in self.fx.items()}}
        return {key: f"{value:f}" for key, value in flat.items()}


def _shock_value(key: str, value: object) -> Decimal:
    if isinstance(value, float):
        raise ValueError(f'{key}: give the shock as a string ("-0.40"), not a floating-point number.')
    try:
        shock = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(
            f'{key}: {value!r} is not a number; give a relative change such as "-0.40".'
        ) from None
    if not shock.is_finite():
        raise ValueError(f"{key}: {value!r} is not a number.")
    if shock <= LOWEST_SHOCK or shock > HIGHEST_SHOCK:
        raise ValueError(
            f"{key}: a shock of {shock:f} is out of range; a relative change above −1 (−100%) and at most 10."
        )
    return shock


def shocks_parse(
    raw: Mapping[str, object], *, assets: Mapping[str, str], currencies: Iterable[str]
) -> Shocks:
    """Read a scenario's shocks from their flat form: an FX pair (``"USD/HKD"``), an asset class
    (``"crypto"``, ``"security"``) or an asset symbol (``assets``: symbol → kind), each to a relative change
    given as a string. Anything else — an unknown asset, a cash asset (it moves only with its FX rate), a
    pair of unknown currencies, a number that is no relative change — is refused, naming the key."""
    if not isinstance(raw, Mapping):
        raise ValueError(
            'Shocks are an object of relative changes, e.g. {"BTC": "-0.40", "USD/HKD": "0.005"}.'
        )
    known_currencies = set(currencies)
    by_asset, by_class, by_pair = {}, {}, {}
    for key, value in raw.items():
        key = str(key).strip()
        shock = _shock_value(key, value)
        if "/" in key:
            currency, _, quote = key.upper().partition("/")
            unknown = [c for c in (currency, quote) if c not in known_currencies]
            if unknown or currency == quote:
                raise ValueError(
                    f"{key}: not an FX pair of two known currencies ({', '.join(sorted(known_currencies))})."
                )
            by_pair[(currency, quote)] = shock
        elif key.lower() in SHOCKABLE_CLASSES:
            by_class[key.lower()] = shock
        elif key in assets:
            if assets[key] == "cash":
                raise ValueError(f'{key} is cash: shock its FX rate instead ("{key}/HKD").')
            by_asset[key] = shock
        else:
            raise ValueError(
                f'{key}: not an asset, an asset class ({", ".join(SHOCKABLE_CLASSES)}) or an FX pair ("USD/HKD").'
            )
    return Shocks(assets=by_asset, classes=by_class, fx=by_pair)


def shocked(value: Decimal, shock: Decimal) -> Decimal:
    """``value × (1 + shock)``, exactly (no rounding: the valuation rounds each position's market value)."""
    with localcontext(prec=WIDE):
        return value * (1 + shock)


def shocked_rates(rates: Mapping[tuple[str, str], Decimal], shocks: Shocks) -> dict[tuple[str, str], Decimal]:
    """Every FX rate in use, each moved by its pair's shock."""
    return {pair: shocked(rate, shocks.fx.get(pair, ZERO)) for pair, rate in rates.items()}


def hkd_per_unit(rates: Mapping[tuple[str, str], Decimal]) -> dict[str, Decimal]:
    """HKD per unit of each currency, as ``collateral.selectors.fx_to_hkd`` derives it from the rates in use:
    a rate to HKD, or through USD (USDT/USD × USD/HKD)."""
    result = {"HKD": Decimal(1)}
    for (currency, quote), rate in rates.items():
        if quote == "HKD":
            result[currency] = rate
    with localcontext(prec=WIDE):
        for (currency, quote), rate in rates.items():
            if quote == "USD" and currency not in result and "USD" in result:
                result[currency] = rate * result["USD"]
    return result


def share(part: Decimal, whole: Decimal | None) -> Decimal | None:
    """``part / whole`` to four places (half-up): a share of a day's volume, of capital, of the cap. None when
    there is no whole to compare with."""
    if whole is None or whole <= 0:
        return None
    with localcontext(prec=WIDE):
        return (part / whole).quantize(SHARE_PLACES, rounding=ROUND_HALF_UP)


def plain(value: Decimal) -> str:
    """A quantity as text without padding zeros (``0.29647034``, ``100``), for the JSON a record keeps."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
