from __future__ import annotations

from decimal import Decimal

from djmoney.money import Money

from accounts.audit import SYSTEM
from accounts.models import Client
from collateral.services import collateral_deposit, pool_open
from financing.lending.services import facility_open
from financing.models import Facility
from tests.accounts.factories import ClientFactory, CreditProfileFactory
from tests.collateral.factories import asset


def facility_with_pool(
    *,
    holdings: dict[str, str] | None = None,
    limit: str = "5000000.00",
    credit_limit: str = "5000000.00",
    client: Client | None = None,
    **facility_arguments,
) -> Facility:
    """An eligible client with an approved credit limit, a facility at a fixed 6.5% and a pool holding
    ``holdings`` (symbol → quantity)."""
    client = client or ClientFactory()
    CreditProfileFactory(client=client, credit_limit=Money(Decimal(credit_limit), "HKD"))
    facility = facility_open(
        client=client,
        limit=limit,
        fixed_rate=facility_arguments.pop("fixed_rate", "0.065"),
        actor=SYSTEM,
        **facility_arguments,
    )
    pool = pool_open(client=client, actor=SYSTEM)
    for symbol, quantity in (holdings or {}).items():
        collateral_deposit(pool=pool, asset=asset(symbol), quantity=quantity, actor=SYSTEM)
    return facility
