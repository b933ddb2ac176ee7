"""The bitstamp and kraken wire formats the fake speaks, shaped as ccxt recorded the real venues' answers,
so that an unmodified ccxt client parses them as it parses the real thing (docs/exchanges.md)."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from exchanges import SUPPORTED_EXCHANGES
from fake_exchange.state import ExchangeState, Order, OrderError, plain, to_decimal

# The fake speaks every venue the platform supports, and no other.
VENUES: tuple[str, ...] = SUPPORTED_EXCHANGES


@dataclass(frozen=True)
class Request:
    """An HTTP request reduced to what the venues look at."""

    method: str
    path: str
    query: Mapping[str, str]
    form: Mapping[str, str]
    headers: Mapping[str, str]

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        return cls(status=status, body=json.dumps(payload).encode())

    @classmethod
    def text(cls, text: str, status: int) -> Response:
        return cls(status=status, body=text.encode(), content_type="text/plain; charset=utf-8")


@dataclass(frozen=True)
class Route:
    endpoint: str
    private: bool
    action: str
    pair: str | None = None


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _fixed(number: Decimal, places: int) -> str:
    """At least ``places`` decimals, as the venues print amounts ("0.50000000"), but never rounded: an
    amount with more decimals than that is printed in full rather than silently changed."""
    rounded = number.quantize(Decimal(1).scaleb(-places))
    return plain(rounded) if rounded == number else plain(number)


def _eight(number: Decimal) -> str:
    return _fixed(number, 8)


def _ten(number: Decimal) -> str:
    return _fixed(number, 10)


class Venue(ABC):
    """One venue's dialect. Stateless: every call gets the ``ExchangeState`` to read and change."""

    name: str
    # Path prefix ccxt's ``urls['api']`` must point at (the fake serves from the host root).
    api_prefix: str
    # Unified symbol -> (venue market id, other accepted ids).
    markets: Mapping[str, tuple[str, tuple[str, ...]]]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.markets)

    def symbol_for(self, market_id: str) -> str | None:
        for symbol, (canonical, aliases) in self.markets.items():
            if market_id.upper() in (canonical.upper(), *(alias.upper() for alias in aliases)):
                return symbol
        return None

    @abstractmethod
    def route(self, method: str, path: str) -> Route | None:
        """The endpoint a request is for, or None for a path the fake does not serve."""

    @abstractmethod
    def authenticated(self, headers: Mapping[str, str]) -> bool:
        """Whether the auth headers ccxt sends for private endpoints are there (their values are not
        checked: the fake accepts any credentials)."""

    @abstractmethod
    def error(self, code: str, message: str | None = None) -> Response:
        """The error body for a venue-neutral error code: reject, insufficient_funds, unavailable,
        not_found, auth, invalid_order, duplicate_client_order_id, bad_request."""

    @abstractmethod
    def handle(self, route: Route, request: Request, state: ExchangeState) -> Response:
        """Answer a request that passed authentication and failure injection."""

    @abstractmethod
    def raw_markets(self) -> Any:
        """The venue's own market-list payload (what its markets endpoint returns)."""

    def _decimal_param(self, params: Mapping[str, str], key: str) -> Decimal:
        if key not in params:
            raise OrderError("bad_request", f"{key} is required")
        try:
            return to_decimal(params[key], key)
        except (TypeError, ValueError) as error:
            raise OrderError("bad_request", str(error)) from None


# ====================================================================================== bitstamp
class Bitstamp(Venue):
    """Bitstamp API v2 as ccxt 4.5 calls it: everything under ``/api/v2/``, private calls are
    form-encoded POSTs signed with ``X-Auth*`` headers."""

    name = "bitstamp"
    api_prefix = "/api"
    markets = {"BTC/USD": ("btcusd", ()), "ETH/USD": ("ethusd", ())}
    # counter_decimals as Bitstamp lists them: BTC/USD trades in whole dollars.
    _decimals = {"BTC/USD": (8, 0), "ETH/USD": (8, 1)}
    _names = {"BTC": "Bitcoin", "ETH": "Ether"}

    _ROUTES: tuple[tuple[str, re.Pattern[str], str, bool, str], ...] = (
        ("GET", re.compile(r"/api/v2/ticker/(?P<pair>[a-z0-9]+)/"), "ticker", False, "ticker"),
        ("GET", re.compile(r"/api/v2/(markets|trading-pairs-info)/"), "markets", False, "markets"),
        (
            "POST",
            re.compile(r"/api/v2/(?P<side>buy|sell)/market/(?P<pair>[a-z0-9]+)/"),
            "create_order",
            True,
            "market",
        ),
        (
            "POST",
            re.compile(r"/api/v2/(?P<side>buy|sell)/(?P<pair>[a-z0-9]+)/"),
            "create_order",
            True,
            "limit",
        ),
        ("POST", re.compile(r"/api/v2/order_status/"), "fetch_order", True, "order_status"),
        (
            "POST",
            re.compile(r"/api/v2/open_orders/(all|(?P<pair>[a-z0-9]+))/"),
            "list_orders",
            True,
            "open_orders",
        ),
        ("POST", re.compile(r"/api/v2/cancel_order/"), "cancel_order", True, "cancel_order"),
        ("POST", re.compile(r"/api/v2/account_balances/"), "balance", True, "account_balances"),
    )

    # Messages ccxt's bitstamp ``exceptions`` map recognises (see its describe()).
    _MESSAGES = {
        "reject": "Minimum order size is 10 USD.",  # broad 'Minimum order size is' -> InvalidOrder
        "invalid_order": "Minimum order size is 10 USD.",
        "insufficient_funds": "You have only 0.00000000 BTC available. Check your account balance for details.",
        "unavailable": "Order could not be placed.",  # exact -> ExchangeNotAvailable
        "not_found": "Order not found.",  # exact -> OrderNotFound
        "auth": "Missing key, signature and nonce parameters",  # exact -> AuthenticationError
        # Not in ccxt's map: it raises the generic ExchangeError with this text.
        "duplicate_client_order_id": "Duplicate client order id.",
        "bad_request": "Invalid request.",
    }

    def route(self, method: str, path: str) -> Route | None:
        for route_method, pattern, endpoint, private, action in self._ROUTES:
            match = pattern.fullmatch(path)
            if method == route_method and match:
                groups = match.groupdict()
                pair = groups.get("pair")
                if action in ("market", "limit"):
                    action = f"{groups['side']}_{action}"
                return Route(endpoint=endpoint, private=private, action=action, pair=pair)
        return None

    def authenticated(self, headers: Mapping[str, str]) -> bool:
        needed = ("x-auth", "x-auth-signature", "x-auth-nonce", "x-auth-timestamp")
        present = {key.lower() for key in headers}
        return all(name in present for name in needed)

    def error(self, code: str, message: str | None = None) -> Response:
        text = message or self._MESSAGES.get(code, self._MESSAGES["reject"])
        if code == "insufficient_funds" and message and "Check your account balance" not in message:
            text = f"{message} Check your account balance for details."
        if code in ("not_found", "auth"):
            body: dict[str, Any] = {"status": "error", "reason": text, "code": "API0000"}
        else:
            body = {"status": "error", "reason": {"__all__": [text]}, "response_code": "400.002"}
        return Response.json(body, status=400)

    def raw_markets(self) -> list[dict[str, Any]]:
        rows = []
        for symbol, (market_id, _aliases) in self.markets.items():
            base, quote = symbol.split("/")
            base_decimals, counter_decimals = self._decimals[symbol]
            rows.append(
                {
                    "name": symbol,
                    "market_symbol": market_id,
                    "base_currency": base,
                    "base_decimals": base_decimals,
                    "counter_currency": quote,
                    "counter_decimals": counter_decimals,
                    "minimum_order_value": "10",
                    "trading": "Enabled",
                    "instant_order_counter_decimals": 2,
                    "instant_and_market_orders": "Enabled",
                    "description": f"{self._names[base]} / U.S. dollar",
                    "market_type": "SPOT",
                }
            )
        return rows

    def handle(self, route: Route, request: Request, state: ExchangeState) -> Response:
        if route.action == "ticker":
            return self._ticker(route, state)
        if route.action == "markets":
            return Response.json(self.raw_markets())
        if route.action == "account_balances":
            return Response.json(
                [
                    {
                        "currency": currency.lower(),
                        "total": _eight(total),
                        "available": _eight(total - reserved),
                        "reserved": _eight(reserved),
                    }
                    for currency, (total, reserved) in sorted(state.balances().items())
                ]
            )
        try:
            if route.action.endswith(("_market", "_limit")):
                return self._create(route, request, state)
            if route.action == "order_status":
                order = self._lookup(request, state)
                return Response.json(self._order_status(order))
            if route.action == "open_orders":
                return self._open_orders(route, state)
            if route.action == "cancel_order":
                order = state.cancel_order(order_id=request.params.get("id"))
                return Response.json(
                    {
                        "id": int(order.id),
                        "amount": _eight(order.remaining),
                        "price": plain(order.limit_price or Decimal(0)),
                        "type": 1 if order.side == "sell" else 0,
                        "market": order.symbol,
                    }
                )
        except OrderError as error:
            return self.error(error.code, error.message if error.code == "insufficient_funds" else None)
        return Response.text("Not Found", 404)

    def _ticker(self, route: Route, state: ExchangeState) -> Response:
        symbol = self.symbol_for(route.pair or "")
        price = state.price(symbol) if symbol else None
        if symbol is None or price is None:
            return Response.text("Not Found", 404)
        seconds = int(state.ticker_time())
        return Response.json(
            {
                "timestamp": str(seconds),
                "open": plain(price),
                "high": plain(price),
                "low": plain(price),
                "last": plain(price),
                "volume": "1234.50000000",
                "vwap": plain(price),
                "bid": plain(price),
                "ask": plain(price),
                "side": "0",
                "open_24": plain(price),
                "percent_change_24": "0.00",
            }
        )

    def _create(self, route: Route, request: Request, state: ExchangeState) -> Response:
        symbol = self.symbol_for(route.pair or "")
        if symbol is None:
            return Response.text("Not Found", 404)
        side, kind = route.action.split("_")
        params = request.params
        amount = self._decimal_param(params, "amount")
        limit_price = self._decimal_param(params, "price") if kind == "limit" else None
        order, _existed = state.place_order(
            make_id=lambda number: str(1_700_000_000_000_000 + number),
            symbol=symbol,
            side=side,
            type=kind,
            amount=amount,
            limit_price=limit_price,
            client_order_id=params.get("client_order_id") or None,
        )
        price = order.limit_price if order.limit_price is not None else state.price(symbol)
        return Response.json(
            {
                "id": order.id,
                "market": symbol,
                "type": "1" if order.side == "sell" else "0",
                "price": plain(price or Decimal(0)),
                "amount": _eight(order.amount),
                "client_order_id": order.client_order_id or "",
                "datetime": _utc(order.created_at).strftime("%Y-%m-%d %H:%M:%S.%f"),
            }
        )

    def _lookup(self, request: Request, state: ExchangeState) -> Order:
        params = request.params
        order_id, client_id = params.get("id"), params.get("client_order_id")
        if not order_id and not client_id:
            raise OrderError("not_found", "Order not found.")
        order = state.poll_order(order_id=order_id or None, client_order_id=client_id or None)
        if order is None:
            raise OrderError("not_found", "Order not found.")
        return order

    def _order_status(self, order: Order) -> dict[str, Any]:
        """Bitstamp's order_status: no original ``amount`` (only ``amount_remaining``) and the fills as
        ``transactions`` keyed by lower-case currency codes — exactly what ccxt's parser expects."""
        base, quote = order.base.lower(), order.quote.lower()
        status = {"open": "Open", "closed": "Finished", "canceled": "Canceled"}[order.status]
        return {
            "id": int(order.id),
            "datetime": _utc(order.created_at).strftime("%Y-%m-%d %H:%M:%S"),
            "type": "1" if order.side == "sell" else "0",
            "status": status,
            "market": order.symbol,
            "client_order_id": order.client_order_id or "",
            "amount_remaining": _eight(order.remaining),
            "transactions": [
                {
                    "tid": fill.trade_number,
                    "price": plain(fill.price),
                    base: _eight(fill.amount),
                    quote: plain(fill.cost),
                    "fee": plain(fill.fee),
                    "datetime": _utc(fill.at).strftime("%Y-%m-%d %H:%M:%S.%f"),
                    "type": 2,
                }
                for fill in order.fills
            ],
        }

    def _open_orders(self, route: Route, state: ExchangeState) -> Response:
        symbol = self.symbol_for(route.pair) if route.pair else None
        rows = []
        for order in state.orders():
            if order.status != "open" or (symbol is not None and order.symbol != symbol):
                continue
            rows.append(
                {
                    "id": order.id,
                    "datetime": _utc(order.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    "type": "1" if order.side == "sell" else "0",
                    "price": plain(order.limit_price or Decimal(0)),
                    "amount": _eight(order.remaining),
                    "amount_at_create": _eight(order.amount),
                    "currency_pair": order.symbol,
                    "market": order.symbol,
                    "client_order_id": order.client_order_id or "",
                }
            )
        return Response.json(rows)


# ====================================================================================== kraken
class Kraken(Venue):
    """Kraken's REST API as ccxt 4.5 calls it: ``/0/public/<Method>`` GETs and ``/0/private/<Method>``
    form-encoded POSTs signed with ``API-Key``/``API-Sign``. Errors come as HTTP 200 with a non-empty
    ``error`` list."""

    name = "kraken"
    api_prefix = ""
    markets = {"BTC/USD": ("XXBTZUSD", ("XBTUSD", "XBT/USD")), "ETH/USD": ("XETHZUSD", ("ETHUSD", "ETH/USD"))}
    _asset_codes = {"BTC": "XXBT", "ETH": "XETH", "USD": "ZUSD"}
    _altnames = {"XXBTZUSD": "XBTUSD", "XETHZUSD": "ETHUSD"}

    _ROUTES: dict[tuple[str, str], tuple[str, bool]] = {
        ("GET", "/0/public/Ticker"): ("ticker", False),
        ("GET", "/0/public/AssetPairs"): ("markets", False),
        ("GET", "/0/public/Assets"): ("markets", False),
        ("POST", "/0/private/AddOrder"): ("create_order", True),
        ("POST", "/0/private/QueryOrders"): ("fetch_order", True),
        ("POST", "/0/private/OpenOrders"): ("list_orders", True),
        ("POST", "/0/private/ClosedOrders"): ("list_orders", True),
        ("POST", "/0/private/CancelOrder"): ("cancel_order", True),
        ("POST", "/0/private/Balance"): ("balance", True),
        ("POST", "/0/private/BalanceEx"): ("balance", True),
    }

    # Messages ccxt's kraken ``exceptions`` map recognises.
    _MESSAGES = {
        "reject": "EOrder:Order minimum not met",  # exact -> InvalidOrder
        "invalid_order": "EOrder:Order minimum not met",
        "insufficient_funds": "EOrder:Insufficient funds",  # exact -> InsufficientFunds
        "unavailable": "EService:Unavailable",  # exact -> ExchangeNotAvailable
        "not_found": "EOrder:Unknown order",  # exact -> InvalidOrder; cancel_order turns it into OrderNotFound
        "auth": "EAPI:Invalid key",  # exact -> AuthenticationError
        # The string other Kraken clients expect for a repeated open cl_ord_id; not in ccxt's map, so
        # ccxt raises the generic ExchangeError.
        "duplicate_client_order_id": "EOrder:Duplicate order",
        "bad_request": "EGeneral:Invalid arguments",  # exact -> BadRequest
    }

    def route(self, method: str, path: str) -> Route | None:
        found = self._ROUTES.get((method, path))
        if found is None:
            return None
        endpoint, private = found
        return Route(endpoint=endpoint, private=private, action=path.rsplit("/", 1)[1])

    def authenticated(self, headers: Mapping[str, str]) -> bool:
        present = {key.lower() for key in headers}
        return "api-key" in present and "api-sign" in present

    def error(self, code: str, message: str | None = None) -> Response:
        # Kraken's error strings are the contract ccxt maps on, so a custom message replaces only the
        # reject text; the others keep the exact string that selects the right exception class.
        text = (
            message if (message and code == "reject") else self._MESSAGES.get(code, self._MESSAGES["reject"])
        )
        return Response.json({"error": [text]})

    def _asset(self, currency: str) -> str:
        return self._asset_codes.get(currency, currency)

    def raw_markets(self) -> dict[str, Any]:
        pairs: dict[str, Any] = {}
        # pair_decimals, tick_size, ordermin, position limits: BTC/USD as ccxt recorded it from Kraken.
        decimals = {"BTC/USD": (1, "0.1", "0.0001", 250, 200), "ETH/USD": (2, "0.01", "0.002", 300, 200)}
        for symbol, (market_id, aliases) in self.markets.items():
            base, quote = symbol.split("/")
            pair_decimals, tick, ordermin, long_limit, short_limit = decimals[symbol]
            pairs[market_id] = {
                "altname": aliases[0],
                "wsname": aliases[1],
                "aclass_base": "currency",
                "base": self._asset(base),
                "aclass_quote": "currency",
                "quote": self._asset(quote),
                "lot": "unit",
                "cost_decimals": 5,
                "pair_decimals": pair_decimals,
                "lot_decimals": 8,
                "lot_multiplier": 1,
                "leverage_buy": [2, 3, 4, 5],
                "leverage_sell": [2, 3, 4, 5],
                # Kraken sends its fee tiers as JSON numbers: [volume, percent]. Not money the fake uses.
                "fees": [[0, 0.26], [50000, 0.24]],
                "fees_maker": [[0, 0.16], [50000, 0.14]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": ordermin,
                "costmin": "0.5",
                "tick_size": tick,
                "status": "online",
                "long_position_limit": long_limit,
                "short_position_limit": short_limit,
            }
        return pairs

    def _raw_assets(self) -> dict[str, Any]:
        return {
            code: {
                "aclass": "currency",
                "altname": {"XXBT": "XBT"}.get(code, currency),
                "decimals": 10 if currency != "USD" else 4,
                "display_decimals": 5 if currency != "USD" else 2,
                "status": "enabled",
            }
            for currency, code in self._asset_codes.items()
        }

    def handle(self, route: Route, request: Request, state: ExchangeState) -> Response:
        params = request.params
        try:
            if route.action == "Ticker":
                return self._ticker(params, state)
            if route.action == "AssetPairs":
                return self._ok(self.raw_markets())
            if route.action == "Assets":
                return self._ok(self._raw_assets())
            if route.action == "AddOrder":
                return self._add_order(params, state)
            if route.action == "QueryOrders":
                return self._query_orders(params, state)
            if route.action in ("OpenOrders", "ClosedOrders"):
                return self._list_orders(route.action, params, state)
            if route.action == "CancelOrder":
                self._cancel(params, state)
                return self._ok({"count": "1"})
            if route.action == "Balance":
                return self._ok(
                    {self._asset(c): _ten(total) for c, (total, _r) in sorted(state.balances().items())}
                )
            if route.action == "BalanceEx":
                return self._ok(
                    {
                        self._asset(currency): {"balance": _ten(total), "hold_trade": _ten(reserved)}
                        for currency, (total, reserved) in sorted(state.balances().items())
                    }
                )
        except OrderError as error:
            return self.error(error.code, error.message)
        return Response.text("Not Found", 404)

    @staticmethod
    def _ok(result: Any) -> Response:
        return Response.json({"error": [], "result": result})

    @staticmethod
    def _cancel(params: Mapping[str, str], state: ExchangeState) -> None:
        """ccxt sends ``cl_ord_id`` for a client id, else ``txid`` holding an order id or a userref."""
        client_id, txid = params.get("cl_ord_id"), params.get("txid")
        if client_id:
            state.cancel_order(client_order_id=client_id)
            return
        try:
            state.cancel_order(order_id=txid)
        except OrderError:
            state.cancel_order(client_order_id=txid)

    def _ticker(self, params: Mapping[str, str], state: ExchangeState) -> Response:
        result = {}
        for market_id in (params.get("pair") or "").split(","):
            symbol = self.symbol_for(market_id)
            if symbol is None:
                return self.error("reject", "EQuery:Unknown asset pair")
            price = state.price(symbol)
            if price is None:
                continue
            last = plain(price)
            result[self.markets[symbol][0]] = {
                "a": [last, "1", "1.000"],
                "b": [last, "1", "1.000"],
                "c": [last, "0.00100000"],
                "v": ["100.00000000", "1234.50000000"],
                "p": [last, last],
                "t": [100, 1000],
                "l": [last, last],
                "h": [last, last],
                "o": last,
            }
        return self._ok(result)

    def _add_order(self, params: Mapping[str, str], state: ExchangeState) -> Response:
        symbol = self.symbol_for(params.get("pair", ""))
        if symbol is None:
            return self.error("reject", "EQuery:Unknown asset pair")
        side, kind = params.get("type", ""), params.get("ordertype", "")
        amount = self._decimal_param(params, "volume")
        limit_price = self._decimal_param(params, "price") if kind == "limit" else None
        order, _existed = state.place_order(
            make_id=lambda number: f"O{number:05d}-FAKEK-{number:06d}",
            symbol=symbol,
            side=side,
            type=kind,
            amount=amount,
            limit_price=limit_price,
            client_order_id=params.get("cl_ord_id") or None,
            userref=params.get("userref") or None,
        )
        return self._ok({"descr": {"order": self._description(order)}, "txid": [order.id]})

    def _description(self, order: Order) -> str:
        altname = self._altnames[self.markets[order.symbol][0]]
        text = f"{order.side} {_eight(order.amount)} {altname} @ {order.type}"
        if order.limit_price is not None:
            text += f" {plain(order.limit_price)}"
        return text

    def _order_info(self, order: Order, *, with_trades: bool, with_reason: bool) -> dict[str, Any]:
        """One order as QueryOrders, OpenOrders and ClosedOrders list it. As ccxt recorded them from
        Kraken: ``userref`` is a string ("0" when none was given, null beside a ``cl_ord_id``), the times
        are strings, and ``reason`` is there in QueryOrders and ClosedOrders only."""
        average = order.average
        info: dict[str, Any] = {
            "refid": None,
            "userref": order.userref or (None if order.client_order_id else "0"),
            "cl_ord_id": order.client_order_id,
            "status": order.status,
            "opentm": f"{order.created_at:.4f}",
            "starttm": "0",
            "expiretm": "0",
            "descr": {
                "pair": self._altnames[self.markets[order.symbol][0]],
                "type": order.side,
                "ordertype": order.type,
                "price": plain(order.limit_price) if order.limit_price is not None else "0",
                "price2": "0",
                "leverage": "none",
                "order": self._description(order),
                "close": "",
            },
            "vol": _eight(order.amount),
            "vol_exec": _eight(order.filled),
            "cost": plain(order.cost),
            "fee": plain(order.fee),
            "price": plain(average) if average is not None else "0.00000",
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": "fciq",
        }
        if order.client_order_id is None:
            del info["cl_ord_id"]
        if with_reason:
            info["reason"] = "User requested" if order.status == "canceled" else None
        if order.closed_at is not None:
            info["closetm"] = f"{order.closed_at:.4f}"
        if with_trades and order.fills:
            info["trades"] = [
                f"T{fill.trade_number:05d}-FAKEK-{fill.trade_number:06d}" for fill in order.fills
            ]
        return info

    def _query_orders(self, params: Mapping[str, str], state: ExchangeState) -> Response:
        with_trades = params.get("trades", "").lower() == "true"
        client_id = params.get("cl_ord_id") or params.get("userref")
        result = {}
        for txid in filter(None, (params.get("txid") or "").split(",")):
            order = state.poll_order(order_id=txid)
            if order is None:
                continue
            if client_id and client_id not in (order.client_order_id, order.userref):
                continue
            result[order.id] = self._order_info(order, with_trades=with_trades, with_reason=True)
        if not params.get("txid") and client_id:
            order = state.poll_order(client_order_id=client_id)
            if order is not None:
                result[order.id] = self._order_info(order, with_trades=with_trades, with_reason=True)
        return self._ok(result)

    def _list_orders(self, action: str, params: Mapping[str, str], state: ExchangeState) -> Response:
        want_open = action == "OpenOrders"
        client_id = params.get("cl_ord_id")
        userref = params.get("userref")
        with_trades = params.get("trades", "").lower() == "true"
        rows = {}
        for order in reversed(state.orders()):
            if (order.status == "open") != want_open:
                continue
            if client_id and order.client_order_id != client_id:
                continue
            if userref and order.userref != userref:
                continue
            rows[order.id] = self._order_info(order, with_trades=with_trades, with_reason=not want_open)
        if want_open:
            return self._ok({"open": rows})
        return self._ok({"closed": rows, "count": str(len(rows))})


def venue_named(name: str) -> Venue:
    if name == "bitstamp":
        return Bitstamp()
    if name == "kraken":
        return Kraken()
    raise ValueError(f"unknown venue {name!r}; one of {', '.join(VENUES)}")
