from __future__ import annotations

import datetime
from decimal import Decimal

from django.utils import timezone
from djmoney.money import Money

from accounts.audit import SYSTEM
from accounts.models import Client
from collateral.services import asset_create, asset_update, collateral_deposit, pool_open
from financing.lending.interest import interest_accrue
from financing.lending.policies import margin_policy_create
from financing.lending.services import drawdown_create, facility_open, fee_charge
from financing.models import Facility
from tests.accounts.factories import ClientFactory, CreditProfileFactory
from tests.collateral.factories import asset, fx, price


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


def _extra_assets() -> None:
    """Two securities priced in USDT (converted through USD/HKD), one of them with a concentration limit; an
    unpriced security; an ineligible one."""
    for symbol, kind, currency, decimals, haircut, limit in [
        ("USDT.A", "security", "USDT", 0, "0.70", None),
        ("USDT.B", "security", "USDT", 0, "0.75", "0.40"),
        ("9988.HK", "security", "HKD", 0, "0.35", None),  # never priced
        ("0001.HK", "security", "HKD", 0, "0.40", None),
    ]:
        asset_create(
            symbol=symbol, name=symbol, kind=kind, currency=currency, decimals=decimals, haircut=haircut,
            concentration_limit=limit, actor=SYSTEM,
        )  # fmt: skip
    fx("USDT", "0.9987", quote="USD")
    price("USDT.A", "150.123456")
    price("USDT.B", "2.5")
    price("0001.HK", "55.35")


BOOK = [
    # (holdings, drawdown, policy: "own" or None)
    ({"BTC": "1.23456789", "0700.HK": "1000", "HKD": "100000.00"}, "580000.00", None),
    ({"0700.HK": "20000", "HKD": "1000.00"}, "1500000.00", "own"),  # Tencent's 50% limit binds
    ({"ETH": "3.141592653589793238", "USD": "1234.56"}, "20000.00", None),
    ({"USDT.A": "17", "USDT.B": "90000", "0005.HK": "400"}, "100000.00", "own"),  # USDT via USD; B capped
    ({"9988.HK": "1000", "0001.HK": "5000", "BTC": "0.5"}, "100000.00", None),  # unpriced, ineligible
    ({"0001.HK": "5000"}, None, None),  # no margin value, no debt
    ({}, None, "own"),  # an empty pool
]


def varied_book() -> list[Facility]:
    """Facilities of every kind a valuation meets (on the standard market): a concentration limit that binds,
    prices in USDT converted through USD/HKD, an unpriced and an ineligible holding, interest and fees, a
    policy of their own or the default, an empty pool and no pool at all."""
    _extra_assets()
    own = margin_policy_create(
        actor=SYSTEM, name="Tight", max_advance="0.6", warning="0.7", margin_call="0.8", forced_sale="0.95",
        target="0.55",
    )  # fmt: skip
    facilities = []
    for holdings, drawdown, policy in BOOK:
        facility = facility_with_pool(holdings=holdings, policy=own if policy else None)
        if drawdown:
            drawdown_create(facility=facility, amount=drawdown, actor=SYSTEM)
            fee_charge(facility=facility, amount="123.45", description="Arrangement fee", actor=SYSTEM)
        facilities.append(facility)
    # Interest on the first: days since a drawdown a week ago.
    first = facilities[0]
    Facility.objects.filter(pk=first.pk).update(opened_on=timezone.localdate() - datetime.timedelta(days=7))
    interest_accrue(facility=first, accrual_date=timezone.localdate(), actor=SYSTEM)
    asset_update(asset=asset("0001.HK"), eligible=False, actor=SYSTEM)  # after it was pledged
    # A client with a facility and no pool at all.
    client = ClientFactory()
    CreditProfileFactory(client=client)
    facilities.append(facility_open(client=client, limit="1000000.00", fixed_rate="0.07", actor=SYSTEM))
    return facilities
