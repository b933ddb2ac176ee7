"""The platform's own stress scenarios: historical days and hypothetical shocks, each with its source
(docs/stress-tests.md). Written into the scenario table by a migration and by ``library_ensure``, both
through ``library_write``."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple


class LibraryScenario(NamedTuple):
    key: str
    name: str
    shocks: dict[str, str]
    sale_cost: str | None
    description: str
    source: str


LIBRARY: list[LibraryScenario] = [
    LibraryScenario(
        "2020-03-12", "12 March 2020 (\"Black Thursday\")", {"BTC": "-0.396", "ETH": "-0.431"}, "0.02",
        "BTC −39.6%, ETH −43.1% in one day, as markets sold everything at the start of the pandemic; venues "
        "were congested and sold at a discount, hence a sale cost of 2%.",
        "Daily closes of 11 and 12 March 2020 (UTC), CoinMarketCap and CoinGecko historical data.",
    ),
    LibraryScenario(
        "2021-05-19", "19 May 2021 (intraday)", {"BTC": "-0.30", "ETH": "-0.40"}, "0.02",
        "The intraday fall of 19 May 2021: BTC about −30%, ETH about −40% from the day's high to its low, "
        "with venues halting and slipping; a sale cost of 2%.",
        "Intraday high and low of 19 May 2021 on the major USD venues (Coinbase, Bitstamp, Kraken).",
    ),
    LibraryScenario(
        "2022-11-09", "9 November 2022 (FTX)", {"BTC": "-0.14"}, None,
        "BTC −14% on the day FTX's insolvency became public.",
        "Daily closes of 8 and 9 November 2022 (UTC), CoinMarketCap historical data.",
    ),
    LibraryScenario(
        "2025-10-10", "10–11 October 2025", {"BTC": "-0.146", "ETH": "-0.213"}, "0.01",
        "BTC −14.6%, ETH −21.3% from the high of 10 October to the low of 11 October 2025, the largest "
        "liquidation of leveraged positions on record.",
        "High of 10 October and low of 11 October 2025 (UTC) on the major USD venues.",
    ),
    LibraryScenario(
        "hk-equities-22", "Hong Kong equities −22%", {"security": "-0.22"}, None,
        "Every security −22%: the size of the price move HKSCC's daily stress test assumes for Hong Kong "
        "equities.",
        "HKSCC's stress-testing parameters for its guarantee fund (HKEX clearing risk management).",
    ),
    LibraryScenario(
        "crypto-15", "BTC and ETH −15%", {"BTC": "-0.15", "ETH": "-0.15"}, None,
        "Hypothetical: BTC and ETH both fall 15%.", "Hypothetical.",
    ),
    LibraryScenario(
        "crypto-30", "BTC and ETH −30%", {"BTC": "-0.30", "ETH": "-0.30"}, None,
        "Hypothetical: BTC and ETH both fall 30%.", "Hypothetical.",
    ),
    LibraryScenario(
        "crypto-50", "BTC and ETH −50%", {"BTC": "-0.50", "ETH": "-0.50"}, None,
        "Hypothetical: BTC and ETH both fall 50%.", "Hypothetical.",
    ),
    LibraryScenario(
        "crypto-50-equities-22", "Crypto −50% and equities −22%", {"crypto": "-0.50", "security": "-0.22"},
        None, "Hypothetical: every crypto asset −50% together with every security −22%.",
        "Hypothetical; the equity leg is HKSCC's daily stress-test move.",
    ),
    LibraryScenario(
        "crypto-40-equities-flat", "Crypto −40%, equities unchanged", {"crypto": "-0.40", "security": "0"},
        None, "Hypothetical: every crypto asset −40% while securities hold their prices.", "Hypothetical.",
    ),
]  # fmt: skip


def library_write(scenario_model) -> int:
    """Write the library's scenarios missing from ``scenario_model``'s table (by key); how many were added.
    The model is passed in so the migration can give its historical one."""
    added = 0
    for item in LIBRARY:
        _, created = scenario_model.objects.get_or_create(
            key=item.key,
            defaults={"name": item.name, "shocks": item.shocks, "description": item.description,
                      "source": item.source, "in_library": True,
                      "sale_cost": Decimal(item.sale_cost) if item.sale_cost else None},
        )  # fmt: skip
        added += created
    return added
