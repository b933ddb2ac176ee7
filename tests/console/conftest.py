"""A small book for the console's pages: three facilities on BTC, one at a margin call after a fall."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from accounts import roles
from accounts.audit import SYSTEM
from financing.lending.services import drawdown_create
from financing.monitoring.cycle import monitoring_cycle_run
from tests.accounts.factories import ClientFactory, StaffFactory
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as

ROLES = {
    "credit": roles.CREDIT_OFFICER,
    "risk": roles.RISK_OFFICER,
    "operations": roles.OPERATIONS,
    "compliance": roles.COMPLIANCE,
    "administrator": roles.ADMINISTRATOR,
}


@pytest.fixture
def staff(db):
    """One member of staff per role, by short name."""
    return SimpleNamespace(**{name: StaffFactory(username=name, role=role) for name, role in ROLES.items()})


@pytest.fixture
def as_role(client, staff):
    """``as_role("risk")``: the test client signed in as that role's member of staff (second factor done)."""

    def sign_in(name: str):
        login_as(client, getattr(staff, name))
        return client

    return sign_in


@pytest.fixture
def book(market):
    """Drawn at BTC US$100,000 and ETH US$4,000; then BTC falls to US$80,000 and ETH to US$3,700. One BTC then
    adds 80,000 × 7.8 × 0.4 = HK$249,600 of margin value, one ETH 3,700 × 7.8 × 0.35 = HK$10,101.
    - ``called``: 1 BTC, HK$265,000 drawn: 106.17%, a margin call; BTC would have to rise to leave it;
    - ``warned``: 1 BTC, HK$230,000: 92.15%, warning; a call if BTC falls (249,600 − 230,000) / 249,600 = 7.85%;
    - ``near``: 1 BTC, HK$210,000: 84.13%, within 10 points of warning; BTC to fall 15.87% for a call;
    - ``ether``: 100 ETH, HK$928,000: 91.87%, warning, no BTC;
    - ``safe``: 10 BTC, HK$250,000: 10.02%, not listed."""
    facilities = {}
    for name, holdings, drawn in [
        ("called", {"BTC": "1"}, "265000.00"),
        ("warned", {"BTC": "1"}, "230000.00"),
        ("near", {"BTC": "1"}, "210000.00"),
        ("ether", {"ETH": "100"}, "928000.00"),
        ("safe", {"BTC": "10"}, "250000.00"),
    ]:
        facility = facility_with_pool(holdings=holdings, client=ClientFactory(name=f"{name.title()} Ltd"))
        drawdown_create(facility=facility, amount=drawn, actor=SYSTEM)
        facilities[name] = facility
    monitoring_cycle_run(trigger="test")
    price("BTC", "80000")
    price("ETH", "3700")
    monitoring_cycle_run(symbols=["BTC", "ETH"], trigger="test")
    return SimpleNamespace(**facilities)
