"""Selling at a crypto venue through ccxt: no order is placed before the venue is asked for its client
order id, so that a retry follows what the first attempt placed (docs/forced-sales-and-top-ups.md)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt

from exchanges import sale_venue_config

logger = logging.getLogger(__name__)

# Errors worth another attempt later (each attempt is counted; too many in a row pause the sale).
VENUE_ERRORS = (ccxt.NetworkError, ccxt.ExchangeError)


@dataclass(frozen=True)
class VenueOrder:
    id: str
    client_order_id: str
    status: str  # open, closed, canceled
    filled: Decimal
    cost: Decimal  # in the quote currency
    fee: Decimal  # in the quote currency

    @property
    def is_done(self) -> bool:
        return self.status in ("closed", "canceled")


def _decimal(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, float):
        raise TypeError("ccxt returned a float; the client must have number = str")
    return Decimal(str(value))


def _fee(order: dict) -> Decimal:
    fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
    return sum((_decimal(fee.get("cost")) for fee in fees if fee), Decimal(0))


def _from_ccxt(order: dict, client_order_id: str) -> VenueOrder:
    filled = _decimal(order.get("filled"))
    cost = _decimal(order.get("cost"))
    if not cost and filled and order.get("average") is not None:
        cost = filled * _decimal(order.get("average"))
    return VenueOrder(
        id=str(order["id"]),
        client_order_id=order.get("clientOrderId") or client_order_id,
        status=order.get("status") or "open",
        filled=filled,
        cost=cost,
        fee=_fee(order),
    )


class SaleVenue:
    """The configured sale venue (``FORCED_SALE_VENUE``, checked by ``exchanges.sale_venue_config``) with
    its ccxt client."""

    def __init__(self, config: dict[str, Any] | None = None):
        self.config = sale_venue_config(config)
        self.name = self.config.name
        self.exchange = self.config.exchange
        self.markets = self.config.markets
        self.order_type = self.config.order_type
        self.client = self.config.client()

    def market(self, symbol: str) -> str:
        return self.config.market(symbol)

    def find(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """The order an earlier attempt placed under this client id, if the venue has it."""
        market = self.market(symbol)
        try:
            if self.exchange == "kraken":
                for fetch in (self.client.fetch_open_orders, self.client.fetch_closed_orders):
                    for order in fetch(market, params={"clientOrderId": client_order_id}):
                        if order.get("clientOrderId") == client_order_id:
                            return _from_ccxt(order, client_order_id)
                return None
            order = self.client.fetch_order(None, market, {"client_order_id": client_order_id})
        except ccxt.OrderNotFound:
            return None
        return _from_ccxt(order, client_order_id)

    def place(
        self, symbol: str, quantity: Decimal, limit_price: Decimal | None, client_order_id: str
    ) -> VenueOrder:
        market = self.market(symbol)
        amount = self.client.amount_to_precision(market, quantity)
        price = None if self.order_type == "market" else self.client.price_to_precision(market, limit_price)
        order = self.client.create_order(
            market, self.order_type, "sell", amount, price, {"clientOrderId": client_order_id}
        )
        return VenueOrder(
            id=str(order["id"]), client_order_id=client_order_id, status="open", filled=Decimal(0), cost=Decimal(0),
            fee=Decimal(0),
        )  # fmt: skip

    def fetch(self, symbol: str, venue_order_id: str, client_order_id: str) -> VenueOrder:
        return _from_ccxt(self.client.fetch_order(venue_order_id, self.market(symbol)), client_order_id)

    def cancel(self, symbol: str, venue_order_id: str) -> None:
        with contextlib.suppress(
            ccxt.OrderNotFound
        ):  # already gone (filled or cancelled): a fetch says which
            self.client.cancel_order(venue_order_id, self.market(symbol))
