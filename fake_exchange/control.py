"""``ControlClient``: steer a fake exchange in another process through its JSON control API; loopback
URLs only, since nothing here may send traffic off this machine (docs/exchanges.md)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from fake_exchange.server import CONTROL_PREFIX, require_loopback


class ControlError(RuntimeError):
    """The fake refused a control call (unknown symbol, bad value...)."""


class ControlClient:
    """``ControlClient("http://127.0.0.1:8801")`` — the fake's ``root_url`` (a ``base_url`` such as
    ``.../api`` works too: only scheme, host and port are used)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        split = urlsplit(url)
        if split.scheme != "http" or split.hostname is None:
            raise ValueError(f"expected http://host:port, got {url!r}")
        require_loopback(split.hostname)
        self.root_url = f"{split.scheme}://{split.netloc}"
        self.timeout = timeout

    def _call(self, method: str, action: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body, default=_json_default).encode()
        request = urllib.request.Request(
            self.root_url + CONTROL_PREFIX + action,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        # A private opener without proxy handlers: a proxy from the environment must never see this.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read(), parse_float=Decimal)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise ControlError(f"{method} {action}: {error.code} {detail}") from None

    def state(self) -> dict[str, Any]:
        return self._call("GET", "state")

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        self._call("POST", "price", {"symbol": symbol, "price": price})

    def set_ticker_age(self, seconds: Decimal | str | int) -> None:
        self._call("POST", "ticker_age", {"seconds": seconds})

    def fail(
        self,
        endpoint: str,
        kind: str,
        *,
        seconds: Decimal | str | int = 0,
        message: str | None = None,
        times: int | None = None,
    ) -> None:
        self._call(
            "POST",
            "failure",
            {"endpoint": endpoint, "kind": kind, "seconds": seconds, "message": message, "times": times},
        )

    def clear_failures(self, endpoint: str | None = None) -> None:
        self._call("POST", "failures/clear", {"endpoint": endpoint})

    def set_fill(
        self, mode: str, *, fraction: Decimal | str | None = None, price: Decimal | str | None = None
    ) -> None:
        self._call("POST", "fill", {"mode": mode, "fraction": fraction, "price": price})

    def set_fee_rate(self, rate: Decimal | str) -> None:
        self._call("POST", "fee", {"rate": rate})

    def set_balance(self, currency: str, amount: Decimal | str) -> None:
        self._call("POST", "balance", {"currency": currency, "amount": amount})

    def set_duplicate_policy(self, policy: str) -> None:
        self._call("POST", "duplicate_policy", {"policy": policy})

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        rows = self._call("GET", "requests")
        return [row for row in rows if endpoint is None or row["endpoint"] == endpoint]

    def clear_requests(self) -> None:
        self._call("POST", "requests/clear", {})

    def orders(self) -> list[dict[str, Any]]:
        return self._call("GET", "orders")

    def reset(self) -> None:
        self._call("POST", "reset", {})


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot send {type(value).__name__} {value!r}: use Decimal or str")
