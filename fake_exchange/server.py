"""``FakeExchange``: one fake venue served over HTTP on loopback by the standard library's threading
server, steerable in-process and through ``/_control/`` (docs/exchanges.md)."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fake_exchange.state import (
    ExchangeState,
    Failure,
    FillPolicy,
    Order,
    RecordedRequest,
    plain,
    to_decimal,
)
from fake_exchange.venues import Request, Response, Venue, venue_named

CONTROL_PREFIX = "/_control/"


def require_loopback(host: str) -> None:
    """The fake must never be reachable from, or talk to, anything but this machine."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(
            f"the fake exchange only binds to loopback addresses (127.0.0.0/8, ::1), not {host!r}"
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeExchange) -> None:
        self.fake = fake
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeExchange/1"

    def do_GET(self) -> None:
        self.server.fake._dispatch(self)

    def do_POST(self) -> None:
        self.server.fake._dispatch(self)

    def do_DELETE(self) -> None:
        self.server.fake._dispatch(self)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            super().log_message(format, *args)


class FakeExchange:
    """A fake bitstamp- or kraken-like exchange for real ccxt clients.

    >>> fake = FakeExchange("bitstamp")
    >>> base_url = fake.start()     # http://127.0.0.1:<port>/api  -> ccxt urls['api']
    >>> fake.set_price("BTC/USD", "97000")
    >>> fake.stop()

    ``port=0`` picks a free port, so any number of venues run side by side.
    """

    def __init__(
        self,
        venue: str = "bitstamp",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str | None = None,
        prices: Mapping[str, object] | None = None,
        balances: Mapping[str, object] | None = None,
        verbose: bool = False,
    ) -> None:
        require_loopback(host)
        self.venue: Venue = venue_named(venue)
        self.name = name or venue
        self.host = host
        self.port = port
        self.verbose = verbose
        self.state = ExchangeState(self.venue.symbols, prices=prices, balances=balances)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Serve in a background thread; return the base URL for ccxt's ``urls['api']``."""
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-exchange-{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the management command's foreground mode)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving. Requests still sleeping in an injected delay are woken and dropped."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeExchange:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def root_url(self) -> str:
        """Where the server listens; the control API is at ``root_url + '/_control/...'``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL ccxt's ``urls['api']`` needs: ``.../api`` for bitstamp, the root for kraken."""
        return self.root_url + self.venue.api_prefix

    @property
    def control_url(self) -> str:
        return self.root_url + CONTROL_PREFIX.rstrip("/")

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"<FakeExchange {self.name} ({self.venue.name}) {state}>"

    # ------------------------------------------------------------------ steering (thread-safe)
    def set_price(self, symbol: str, price: Decimal | str) -> None:
        self.state.set_price(symbol, price)

    def price(self, symbol: str) -> Decimal | None:
        return self.state.price(symbol)

    def set_ticker_age(self, seconds: Decimal | str | int) -> None:
        """Make the ticker's timestamp this old. Only bitstamp's ticker carries a timestamp: kraken's
        has none (ccxt reports ``timestamp: None``), so there staleness cannot be seen in the ticker."""
        self.state.set_ticker_age(seconds)

    def fail(
        self,
        endpoint: str,
        kind: str,
        *,
        seconds: Decimal | str | int = 0,
        message: str | None = None,
        times: int | None = None,
    ) -> Failure:
        """Arm a failure for an endpoint (``ticker``, ``create_order``, ``fetch_order``, ``cancel_order``,
        ``balance``, ``list_orders``, ``markets`` or ``*``). Kinds: ``http_500``; ``delay`` (sleep, then
        answer normally); ``lost_response`` (do the work — e.g. place the order — then sleep before
        answering, the classic "timed out but it happened"); ``reject``; ``insufficient_funds``;
        ``unavailable``. ``times``: how many requests it hits (default: until cleared)."""
        return self.state.set_failure(endpoint, kind, seconds=seconds, message=message, times=times)

    def clear_failures(self, endpoint: str | None = None) -> None:
        self.state.clear_failures(endpoint)

    def set_fill(
        self, mode: str, *, fraction: Decimal | str | None = None, price: Decimal | str | None = None
    ) -> FillPolicy:
        """``full`` | ``partial`` (needs ``fraction`` of the amount per ``fetch_order`` poll) | ``never``;
        ``price`` forces the fill price."""
        return self.state.set_fill(mode, fraction=fraction, price=price)

    def set_fee_rate(self, rate: Decimal | str) -> None:
        """Fee charged on each fill, as a fraction of its cost, in the quote currency."""
        self.state.set_fee_rate(rate)

    def set_balance(self, currency: str, amount: Decimal | str) -> None:
        self.state.set_balance(currency, amount)

    def set_duplicate_policy(self, policy: str) -> None:
        """``reject`` (default) | ``reject_open`` | ``return_existing`` | ``allow``; see ``ExchangeState``."""
        self.state.set_duplicate_policy(policy)

    def requests(self, endpoint: str | None = None) -> list[RecordedRequest]:
        """The requests received so far (control API excluded), optionally for one endpoint."""
        return self.state.requests(endpoint)

    def clear_requests(self) -> None:
        self.state.clear_requests()

    def orders(self) -> list[Order]:
        return self.state.orders()

    def reset(self) -> None:
        self.state.reset()

    # ------------------------------------------------------------------ request handling
    def _dispatch(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length) if length else b""
        if split.path.startswith(CONTROL_PREFIX):
            self._send(handler, self._control(handler.command, split.path, raw_body))
            return
        headers = {key: value for key, value in handler.headers.items()}
        request = Request(
            method=handler.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            form=_form(raw_body, headers.get("Content-Type", "")),
            headers=headers,
        )
        route = self.venue.route(request.method, request.path)
        self.state.record(
            RecordedRequest(
                method=request.method,
                path=request.path,
                endpoint=route.endpoint if route else None,
                query=request.query,
                form=request.form,
                at=time.time(),
            )
        )
        if route is None:
            self._send(handler, Response.text("Not Found", 404))
            return
        if route.private and not self.venue.authenticated(request.headers):
            self._send(handler, self.venue.error("auth"))
            return
        failure = self.state.take_failure(route.endpoint)
        if failure is not None:
            if failure.kind == "http_500":
                self._send(handler, Response.text("Internal Server Error", 500))
                return
            if failure.kind in ("reject", "insufficient_funds", "unavailable"):
                self._send(handler, self.venue.error(failure.kind, failure.message))
                return
            if failure.kind == "delay" and self._sleep(failure.seconds):
                return
        response = self.venue.handle(route, request, self.state)
        if failure is not None and failure.kind == "lost_response" and self._sleep(failure.seconds):
            return
        self._send(handler, response)

    def _sleep(self, seconds: Decimal) -> bool:
        """Sleep for an injected delay; True if the exchange is stopping meanwhile (then don't answer)."""
        return self._stopping.wait(float(seconds))

    @staticmethod
    def _send(handler: _Handler, response: Response) -> None:
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            handler.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout was shorter than our delay): nothing to tell it

    # ------------------------------------------------------------------ control API
    def _control(self, method: str, path: str, raw_body: bytes) -> Response:
        action = path[len(CONTROL_PREFIX) :].strip("/")
        try:
            body: dict[str, Any] = json.loads(raw_body or b"{}", parse_float=Decimal)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            return Response.json(self._control_action(method, action, body))
        except (KeyError, TypeError, ValueError) as error:
            return Response.json({"error": f"{type(error).__name__}: {error}"}, status=400)

    def _control_action(self, method: str, action: str, body: dict[str, Any]) -> Any:
        state = self.state
        if method == "GET" and action == "state":
            return {
                "name": self.name,
                "venue": self.venue.name,
                "base_url": self.base_url,
                **state.snapshot(),
            }
        if method == "GET" and action == "requests":
            return [request.to_json() for request in state.requests(body.get("endpoint"))]
        if method == "GET" and action == "orders":
            return [order.to_json() for order in state.orders()]
        if method != "POST":
            raise ValueError(f"unknown control call {method} {action!r}")
        if action == "price":
            state.set_price(body["symbol"], _money(body["price"]))
        elif action == "ticker_age":
            state.set_ticker_age(_money(body["seconds"]))
        elif action == "failure":
            state.set_failure(
                body["endpoint"],
                body["kind"],
                seconds=_money(body.get("seconds", "0")),
                message=body.get("message"),
                times=body.get("times"),
            )
        elif action == "failures/clear":
            state.clear_failures(body.get("endpoint"))
        elif action == "fill":
            fraction, price = body.get("fraction"), body.get("price")
            state.set_fill(
                body["mode"],
                fraction=None if fraction is None else _money(fraction),
                price=None if price is None else _money(price),
            )
        elif action == "fee":
            state.set_fee_rate(_money(body["rate"]))
        elif action == "balance":
            state.set_balance(body["currency"], _money(body["amount"]))
        elif action == "duplicate_policy":
            state.set_duplicate_policy(body["policy"])
        elif action == "requests/clear":
            state.clear_requests()
        elif action == "reset":
            state.reset()
        else:
            raise ValueError(f"unknown control call POST {action!r}")
        return {"ok": True, **state.snapshot()}


def _money(value: object) -> Decimal:
    """JSON numbers arrive as Decimal (``parse_float=Decimal``) or int; strings are preferred."""
    return to_decimal(value if isinstance(value, Decimal | str) else str(value), "value")


def _form(raw_body: bytes, content_type: str) -> dict[str, str]:
    """The parameters of a POST body. ccxt form-encodes every private call the fake serves (kraken uses
    JSON only for batch orders, which it does not), so a JSON body is only flattened for the log."""
    text = raw_body.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            data = json.loads(text, parse_float=Decimal)
        except ValueError:
            return {}
        return {str(key): _text(value) for key, value in data.items()} if isinstance(data, dict) else {}
    return dict(parse_qsl(text, keep_blank_values=True))


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return plain(value)
    return json.dumps(value, default=str)
