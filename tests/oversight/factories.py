"""Books and scenarios for the oversight tests, built through the services."""

from __future__ import annotations

import random
from decimal import Decimal

from accounts.audit import SYSTEM
from collateral.services import asset_update
from financing.lending.services import drawdown_create
from financing.monitoring.sweep import facility_figures
from oversight.models import StressScenario
from tests.financing.factories import facility_with_pool


def scenario(shocks: dict[str, str], *, sale_cost: str | None = None, key: str = "test") -> StressScenario:
    return StressScenario.objects.create(
        key=key, name=key, shocks=shocks, sale_cost=Decimal(sale_cost) if sale_cost else None
    )


def random_book(market, *, facilities: int, seed: int) -> list:
    """``facilities`` facilities over every standard asset (HSBC with a 30% concentration limit), each drawn
    to 40%–100% of its margin value: some well inside, many near the thresholds."""
    rng = random.Random(seed)
    asset_update(asset=market["0005.HK"], actor=SYSTEM, concentration_limit="0.30")
    made = []
    for _ in range(facilities):
        holdings = {}
        for symbol, high, places in [("BTC", 3, 8), ("ETH", 40, 18), ("0700.HK", 5000, 0), ("0005.HK", 9000, 0),
                                     ("HKD", 500000, 2), ("USD", 50000, 2)]:  # fmt: skip
            if rng.random() < 0.6:
                quantity = Decimal(rng.randint(1, 10**places * high)) / Decimal(10**places)
                holdings[symbol] = str(quantity)
        facility = facility_with_pool(holdings=holdings, limit="50000000", credit_limit="50000000")
        margin_value = facility_figures([facility.client_id])[0].margin_value
        room = (margin_value * Decimal(rng.randint(40, 84)) / 100).quantize(Decimal("1"))
        if room >= 1:
            drawdown_create(facility=facility, amount=str(room), actor=SYSTEM)
        made.append(facility)
    return made
