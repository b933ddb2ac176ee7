"""``manage.py simulate_market``: moves BTC and ETH on the demo's fake venues every few seconds, so that
the oracle, the sweep and the ladder have something to watch (docs/exchanges.md)."""

from __future__ import annotations

import random
import time
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fake_exchange.control import ControlClient

START = {"BTC/USD": Decimal("98000"), "ETH/USD": Decimal("3400")}


class Command(BaseCommand):
    help = "Move BTC and ETH on the demo's fake venues: a random walk, and an optional one-off shock."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=5.0, help="seconds between moves")
        parser.add_argument("--step-bp", type=int, default=30, help="largest move per step, in basis points")
        parser.add_argument("--shock", action="append", default=[], help="SYMBOL=PERCENT, e.g. BTC=-25, once")
        parser.add_argument("--once", action="store_true", help="make one move and stop")
        parser.add_argument("--seed", type=int, default=None)

    def handle(
        self, *args, every: float, step_bp: int, shock: list[str], once: bool, seed: int | None, **options
    ):
        venues = [v for v in settings.PRICE_VENUES if v.get("base_url")]
        if not venues:
            raise CommandError("No fake venues in PRICE_VENUES (entries with a base_url on loopback).")
        controls = [(v["name"], ControlClient(v["base_url"])) for v in venues]
        rng = random.Random(seed)
        prices = dict(START)
        shocks = {}
        for item in shock:
            symbol, _, percent = item.partition("=")
            shocks[f"{symbol.upper()}/USD"] = Decimal(percent) / 100
        self.stdout.write(
            f"simulating BTC and ETH on {', '.join(name for name, _ in controls)} every {every:g} s"
        )
        while True:
            for market in prices:
                if market in shocks:
                    prices[market] = (prices[market] * (1 + shocks.pop(market))).quantize(Decimal("0.01"))
                    self.stdout.write(f"shock: {market} now {prices[market]}")
                else:
                    step = Decimal(rng.randint(-step_bp, step_bp)) / 10000
                    prices[market] = (prices[market] * (1 + step)).quantize(Decimal("0.01"))
            for name, control in controls:
                for market, price in prices.items():
                    spread = Decimal(rng.randint(-5, 5)) / 10000  # venues a few basis points apart
                    try:
                        control.set_price(market, (price * (1 + spread)).quantize(Decimal("1")))
                    except OSError as error:
                        self.stderr.write(f"{name} did not answer ({error}); trying again next step")
            self.stdout.write("  ".join(f"{m} {p}" for m, p in prices.items()))
            self.stdout.flush()
            if once:
                return
            time.sleep(every)
