import pytest

from accounts.audit import SYSTEM
from financing.lending.services import drawdown_create
from financing.monitoring.cycle import monitoring_cycle_run
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as
from tests.web.factories import ClientUserFactory


@pytest.fixture
def facility(market):
    """1 BTC only: LV 312,000 at US$100,000. Drawn 265,200: a ratio of 85%."""
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    return facility


@pytest.fixture
def owner(facility):
    return ClientUserFactory(client=facility.client)


@pytest.fixture
def signed_in(client, owner):
    login_as(client, owner)
    return client


@pytest.fixture
def stranger(client, market):
    """Another client's user, with a facility of their own."""
    other = facility_with_pool(holdings={"ETH": "10"})
    return ClientUserFactory(client=other.client)


def btc_at(value: str):
    price("BTC", value)
    return monitoring_cycle_run(symbols=["BTC"], trigger="test")
