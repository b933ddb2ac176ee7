"""The venue-neutral state of one fake exchange (prices, balances, orders, failure modes, the request
log), behind one lock because each request is answered in its own thread (docs/exchanges.md)."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Literal, get_args

FailureKind = Literal["http_500", "delay", "lost_response", "reject", "insufficient_funds", "unavailable"]
FillMode = Literal["full", "partial", "never"]
AMOUNT_PRECISION = Decimal("0.00000001")
DuplicatePolicy = Literal["reject", "reject_open", "return_existing", "allow"]
Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
OrderStatus = Literal["open", "closed", "canceled"]

FAILURE_KINDS: tuple[str, ...] = get_args(FailureKind)
FILL_MODES: tuple[str, ...] = get_args(FillMode)
DUPLICATE_POLICIES: tuple[str, ...] = get_args(DuplicatePolicy)

# Logical endpoint names, shared by both venues, so a test says "fail create_order" without knowing
# that bitstamp calls it ``sell/market/btcusd/`` and kraken ``AddOrder``. "*" matches every endpoint.
ENDPOINTS: tuple[str, ...] = (
    "ticker",
    "markets",
    "create_order",
    "fetch_order",
    "list_orders",
    "cancel_order",
    "balance",
)
ANY_ENDPOINT = "*"

DEFAULT_PRICES: dict[str, Decimal] = {"BTC/USD": Decimal("98000"), "ETH/USD": Decimal("3400")}
DEFAULT_BALANCES: dict[str, Decimal] = {
    "BTC": Decimal("100"),
    "ETH": Decimal("1000"),
    "USD": Decimal("10000000"),
}


def to_decimal(value: object, what: str) -> Decimal:
    """Parse a money value. Floats are refused outright: ``Decimal(0.1)`` is not 0.1, and a test that
    passes a float has already lost the exactness it wants to assert."""
    if isinstance(value, bool | float):
        raise TypeError(f"{what}: pass a Decimal or a decimal string, not {type(value).__name__} {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return number


def plain(number: Decimal) -> str:
    """Render a Decimal the way exchanges do: positional notation, never ``1E+5``."""
    return format(number, "f")


class OrderError(Exception):
    """An order the exchange refuses. ``code`` is venue-neutral; each venue renders it as the error body
    the real exchange would send, so ccxt raises its usual exception class."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Failure:
    """A failure mode armed for one endpoint. ``remaining`` counts how many more requests it hits
    (``None``: every request until cleared), so "the first attempt fails, the retry succeeds" is one line."""

    kind: FailureKind
    seconds: Decimal = Decimal(0)
    message: str | None = None
    remaining: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seconds": plain(self.seconds),
            "message": self.message,
            "remaining": self.remaining,
        }


@dataclass(frozen=True)
class FillPolicy:
    """How orders fill. ``full``: at once; ``partial``: ``fraction`` of the original amount on every
    ``fetch_order`` poll (nothing at placement); ``never``: stays open. ``price`` overrides the fill
    price (to test price-deviation guards); otherwise market orders fill at the current price and limit
    orders at the better of their limit and the current price, once the price has reached the limit."""

    mode: FillMode = "full"
    fraction: Decimal = Decimal(1)
    price: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "fraction": plain(self.fraction),
            "price": None if self.price is None else plain(self.price),
        }


@dataclass(frozen=True)
class Fill:
    """One execution of an order (a "transaction" on bitstamp, a "trade" on kraken)."""

    trade_number: int
    amount: Decimal
    price: Decimal
    fee: Decimal
    at: float

    @property
    def cost(self) -> Decimal:
        return self.amount * self.price


@dataclass
class Order:
    """An order as the fake keeps it. Callers only ever get copies (see ``ExchangeState``)."""

    number: int
    id: str
    client_order_id: str | None
    userref: str | None
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    limit_price: Decimal | None
    created_at: float
    status: OrderStatus = "open"
    fills: list[Fill] = field(default_factory=list)
    closed_at: float | None = None
    polls: int = 0

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]

    @property
    def filled(self) -> Decimal:
        return sum((fill.amount for fill in self.fills), Decimal(0))

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def cost(self) -> Decimal:
        return sum((fill.cost for fill in self.fills), Decimal(0))

    @property
    def fee(self) -> Decimal:
        return sum((fill.fee for fill in self.fills), Decimal(0))

    @property
    def average(self) -> Decimal | None:
        filled = self.filled
        return self.cost / filled if filled else None

    def copy(self) -> Order:
        return dataclasses.replace(self, fills=list(self.fills))

    def to_json(self) -> dict[str, Any]:
        average = self.average
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "userref": self.userref,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "amount": plain(self.amount),
            "limit_price": None if self.limit_price is None else plain(self.limit_price),
            "status": self.status,
            "filled": plain(self.filled),
            "remaining": plain(self.remaining),
            "cost": plain(self.cost),
            "fee": plain(self.fee),
            "average": None if average is None else plain(average),
            "fills": [
                {"amount": plain(f.amount), "price": plain(f.price), "fee": plain(f.fee)} for f in self.fills
            ],
            "polls": self.polls,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (control API calls excluded), for assertions such as "exactly one
    order was placed". ``params`` merges the query string and the form body."""

    method: str
    path: str
    endpoint: str | None
    query: Mapping[str, str]
    form: Mapping[str, str]
    at: float

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "query": dict(self.query),
            "form": dict(self.form),
            "at": self.at,
        }


class ExchangeState:
    """All mutable state of one fake venue, guarded by one re-entrant lock."""

    def __init__(
        self,
        symbols: tuple[str, ...],
        prices: Mapping[str, object] | None = None,
        balances: Mapping[str, object] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.symbols = symbols
        self._initial_prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._initial_balances = dict(DEFAULT_BALANCES if balances is None else balances)
        self.reset()

    # ------------------------------------------------------------------ set-up
    def reset(self) -> None:
        """Back to the state the exchange was built with: initial prices and balances, no orders, no
        failures, fill fully, no fee, duplicates rejected, empty request log."""
        with self._lock:
            self._prices: dict[str, Decimal] = {}
            for symbol, price in self._initial_prices.items():
                self.set_price(symbol, price)
            self._balances: dict[str, Decimal] = {}
            for currency, amount in self._initial_balances.items():
                self.set_balance(currency, amount)
            self._ticker_age = Decimal(0)
            self._failures: dict[str, Failure] = {}
            self._fill = FillPolicy()
            self._fee_rate = Decimal(0)
            self._duplicate_policy: DuplicatePolicy = "reject"
            self._orders: list[Order] = []
            self._requests: list[RecordedRequest] = []
            self._order_numbers = itertools.count(1)
            self._trade_numbers = itertools.count(1)

    # ------------------------------------------------------------------ prices
    def set_price(self, symbol: str, price: object) -> None:
        self._check_symbol(symbol)
        value = to_decimal(price, f"price of {symbol}")
        if value <= 0:
            raise ValueError(f"price of {symbol} must be positive, got {value}")
        with self._lock:
            self._prices[symbol] = value

    def price(self, symbol: str) -> Decimal | None:
        with self._lock:
            return self._prices.get(symbol)

    def prices(self) -> dict[str, Decimal]:
        with self._lock:
            return dict(self._prices)

    def set_ticker_age(self, seconds: object) -> None:
        """Make the ticker's timestamp this many seconds old (0: fresh), to test staleness guards."""
        value = to_decimal(seconds, "ticker age")
        if value < 0:
            raise ValueError("ticker age cannot be negative")
        with self._lock:
            self._ticker_age = value

    @property
    def ticker_age(self) -> Decimal:
        with self._lock:
            return self._ticker_age

    def ticker_time(self) -> Decimal:
        """The timestamp (Unix seconds) the ticker reports: now, minus the configured age."""
        return Decimal(str(time.time())) - self.ticker_age

    # ------------------------------------------------------------------ balances
    def set_balance(self, currency: str, amount: object) -> None:
        value = to_decimal(amount, f"balance of {currency}")
        if value < 0:
            raise ValueError(f"balance of {currency} cannot be negative")
        with self._lock:
            self._balances[currency.upper()] = value

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Currency -> (total, reserved by open orders)."""
        with self._lock:
            return {currency: (total, self._reserved(currency)) for currency, total in self._balances.items()}

    def _reserved(self, currency: str) -> Decimal:
        reserved = Decimal(0)
        for order in self._orders:
            if order.status != "open":
                continue
            if order.side == "sell" and order.base == currency:
                reserved += order.remaining
            elif order.side == "buy" and order.quote == currency:
                price = order.limit_price or self._prices.get(order.symbol) or Decimal(0)
                reserved += order.remaining * price
        return reserved

    def _available(self, currency: str) -> Decimal:
        return self._balances.get(currency, Decimal(0)) - self._reserved(currency)

    # ------------------------------------------------------------------ failures
    def set_failure(
        self,
        endpoint: str,
        kind: str,
        *,
        seconds: object = 0,
        message: str | None = None,
        times: int | None = None,
    ) -> Failure:
        if endpoint != ANY_ENDPOINT and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)} or '*'")
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; one of {', '.join(FAILURE_KINDS)}")
        delay = to_decimal(seconds, "seconds")
        if delay < 0:
            raise ValueError("seconds cannot be negative")
        if kind in ("delay", "lost_response") and delay == 0:
            raise ValueError(f"a {kind!r} failure needs seconds > 0")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        failure = Failure(kind=kind, seconds=delay, message=message, remaining=times)  # type: ignore[arg-type]
        with self._lock:
            self._failures[endpoint] = failure
        return failure

    def clear_failures(self, endpoint: str | None = None) -> None:
        with self._lock:
            if endpoint is None:
                self._failures.clear()
            else:
                self._failures.pop(endpoint, None)

    def failures(self) -> dict[str, Failure]:
        with self._lock:
            return dict(self._failures)

    def take_failure(self, endpoint: str) -> Failure | None:
        """The failure that applies to this request, if any, counting it against ``times``."""
        with self._lock:
            key = endpoint if endpoint in self._failures else ANY_ENDPOINT
            failure = self._failures.get(key)
            if failure is None:
                return None
            if failure.remaining is not None:
                if failure.remaining <= 1:
                    del self._failures[key]
                else:
                    self._failures[key] = dataclasses.replace(failure, remaining=failure.remaining - 1)
            return failure

    # ------------------------------------------------------------------ fills, fees, duplicates
    def set_fill(self, mode: str, *, fraction: object = None, price: object = None) -> FillPolicy:
        if mode not in FILL_MODES:
            raise ValueError(f"unknown fill mode {mode!r}; one of {', '.join(FILL_MODES)}")
        share = Decimal(1) if fraction is None else to_decimal(fraction, "fraction")
        if not Decimal(0) < share <= Decimal(1):
            raise ValueError("fraction must be in (0, 1]")
        if mode == "partial" and fraction is None:
            raise ValueError("a partial fill needs a fraction, e.g. '0.25'")
        fill_price = None if price is None else to_decimal(price, "fill price")
        if fill_price is not None and fill_price <= 0:
            raise ValueError("fill price must be positive")
        policy = FillPolicy(mode=mode, fraction=share, price=fill_price)  # type: ignore[arg-type]
        with self._lock:
            self._fill = policy
        return policy

    @property
    def fill_policy(self) -> FillPolicy:
        with self._lock:
            return self._fill

    def set_fee_rate(self, rate: object) -> None:
        value = to_decimal(rate, "fee rate")
        if not Decimal(0) <= value < Decimal(1):
            raise ValueError("fee rate must be in [0, 1)")
        with self._lock:
            self._fee_rate = value

    @property
    def fee_rate(self) -> Decimal:
        with self._lock:
            return self._fee_rate

    def set_duplicate_policy(self, policy: str) -> None:
        """What a second order with an already used client order id does: ``reject`` (default: refused,
        whatever the first order's state), ``reject_open`` (refused only while the first is open — what
        Kraken documents for ``cl_ord_id``), ``return_existing`` (answers with the first order, creates
        nothing) or ``allow`` (creates a second order — Bitstamp documents no uniqueness check)."""
        if policy not in DUPLICATE_POLICIES:
            raise ValueError(f"unknown duplicate policy {policy!r}; one of {', '.join(DUPLICATE_POLICIES)}")
        with self._lock:
            self._duplicate_policy = policy  # type: ignore[assignment]

    @property
    def duplicate_policy(self) -> DuplicatePolicy:
        with self._lock:
            return self._duplicate_policy

    # ------------------------------------------------------------------ request log
    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def requests(self, endpoint: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if endpoint is None or r.endpoint == endpoint]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ orders
    def place_order(
        self,
        *,
        make_id: Any,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        limit_price: Decimal | None,
        client_order_id: str | None = None,
        userref: str | None = None,
    ) -> tuple[Order, bool]:
        """Place an order; return (a copy of the order, whether it already existed). ``make_id`` turns
        the order's sequence number into the venue's id format. Raises ``OrderError`` for a refusal."""
        self._check_symbol(symbol)
        if side not in ("buy", "sell") or type not in ("market", "limit"):
            raise OrderError("invalid_order", f"unsupported order {side} {type}")
        if amount <= 0:
            raise OrderError("invalid_order", "amount must be positive")
        if type == "limit" and (limit_price is None or limit_price <= 0):
            raise OrderError("invalid_order", "a limit order needs a positive price")
        with self._lock:
            if client_order_id:
                existing = self._find(client_order_id=client_order_id)
                policy = self._duplicate_policy
                if existing is not None:
                    if policy == "reject" or (policy == "reject_open" and existing.status == "open"):
                        raise OrderError(
                            "duplicate_client_order_id",
                            f"client order id {client_order_id} is already used by order {existing.id}",
                        )
                    if policy == "return_existing":
                        return existing.copy(), True
            market_price = self._prices.get(symbol)
            if market_price is None and type == "market":
                raise OrderError("invalid_order", f"no price for {symbol}")
            base, quote = symbol.split("/")
            if side == "sell":
                available = self._available(base)
                if available < amount:
                    raise OrderError(
                        "insufficient_funds", f"You have only {plain(available)} {base} available."
                    )
            else:
                needed = amount * (limit_price if type == "limit" else market_price)  # type: ignore[operator]
                available = self._available(quote)
                if available < needed:
                    raise OrderError(
                        "insufficient_funds", f"You have only {plain(available)} {quote} available."
                    )
            number = next(self._order_numbers)
            order = Order(
                number=number,
                id=make_id(number),
                client_order_id=client_order_id or None,
                userref=userref or None,
                symbol=symbol,
                side=side,  # type: ignore[arg-type]
                type=type,  # type: ignore[arg-type]
                amount=amount,
                limit_price=limit_price,
                created_at=time.time(),
            )
            self._orders.append(order)
            self._advance(order, at_placement=True)
            return order.copy(), False

    def poll_order(self, *, order_id: str | None = None, client_order_id: str | None = None) -> Order | None:
        """Look an order up the way ``fetch_order`` does: this is the moment partial fills progress."""
        with self._lock:
            order = self._find(order_id=order_id, client_order_id=client_order_id)
            if order is None:
                return None
            order.polls += 1
            self._advance(order, at_placement=False)
            return order.copy()

    def cancel_order(self, *, order_id: str | None = None, client_order_id: str | None = None) -> Order:
        with self._lock:
            order = self._find(order_id=order_id, client_order_id=client_order_id)
            if order is None or order.status != "open":
                raise OrderError("not_found", "Order not found.")
            order.status = "canceled"
            order.closed_at = time.time()
            return order.copy()

    def orders(self) -> list[Order]:
        with self._lock:
            return [order.copy() for order in self._orders]

    def _find(self, *, order_id: str | None = None, client_order_id: str | None = None) -> Order | None:
        # The newest match wins: with the "allow" policy several orders can share a client order id.
        for order in reversed(self._orders):
            if order_id is not None and order.id != order_id:
                continue
            if client_order_id is not None and client_order_id not in (order.client_order_id, order.userref):
                continue
            if order_id is None and client_order_id is None:
                continue
            return order
        return None

    def _advance(self, order: Order, *, at_placement: bool) -> None:
        """Apply the fill policy in force now to an open order."""
        policy = self._fill
        if order.status != "open" or policy.mode == "never" or (policy.mode == "partial" and at_placement):
            return
        fill_price = policy.price if policy.price is not None else self._market_fill_price(order)
        if fill_price is None:
            return
        # A real venue fills in the market's amount precision (8 places for BTC and ETH): so does this one.
        partial = (order.amount * policy.fraction).quantize(AMOUNT_PRECISION, rounding=ROUND_DOWN)
        step = order.remaining if policy.mode == "full" or partial <= 0 else min(order.remaining, partial)
        if step <= 0:
            return
        fee = step * fill_price * self._fee_rate
        base, quote = order.base, order.quote
        if order.side == "sell":
            self._balances[base] = self._balances.get(base, Decimal(0)) - step
            self._balances[quote] = self._balances.get(quote, Decimal(0)) + step * fill_price - fee
        else:
            self._balances[base] = self._balances.get(base, Decimal(0)) + step
            self._balances[quote] = self._balances.get(quote, Decimal(0)) - step * fill_price - fee
        order.fills.append(
            Fill(
                trade_number=next(self._trade_numbers), amount=step, price=fill_price, fee=fee, at=time.time()
            )
        )
        if order.remaining <= 0:
            order.status = "closed"
            order.closed_at = time.time()

    def _market_fill_price(self, order: Order) -> Decimal | None:
        market = self._prices.get(order.symbol)
        if market is None:
            return None
        if order.type == "market":
            return market
        limit = order.limit_price
        assert limit is not None
        if order.side == "sell":
            return max(limit, market) if market >= limit else None
        return min(limit, market) if market <= limit else None

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self.symbols:
            raise ValueError(f"unknown symbol {symbol!r}; this venue lists {', '.join(self.symbols)}")

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (decimals as strings), for the control API and debugging."""
        with self._lock:
            return {
                "prices": {symbol: plain(price) for symbol, price in self._prices.items()},
                "ticker_age_seconds": plain(self._ticker_age),
                "balances": {
                    currency: {"total": plain(total), "reserved": plain(reserved)}
                    for currency, (total, reserved) in self.balances().items()
                },
                "failures": {endpoint: failure.to_json() for endpoint, failure in self._failures.items()},
                "fill": self._fill.to_json(),
                "fee_rate": plain(self._fee_rate),
                "duplicate_policy": self._duplicate_policy,
                "orders": [order.to_json() for order in self._orders],
                "request_count": len(self._requests),
            }
