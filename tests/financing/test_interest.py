import datetime
from decimal import Decimal

import pytest

from accounts.audit import SYSTEM
from core.exceptions import InvalidInput
from financing.calculations import interest_for_days
from financing.enums import RateKind
from financing.models import InterestAccrual
from financing.selectors import facility_debt
from financing.services import base_rate_record, drawdown_create, interest_accrue, interest_accrue_all
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


def test_act_365():
    assert interest_for_days(Decimal("1000000.00"), Decimal("0.065"), 1) == Decimal("178.08")  # 178.0821…
    assert interest_for_days(Decimal("1000000.00"), Decimal("0.065"), 3) == Decimal("534.25")  # 534.2466…
    assert interest_for_days(Decimal("1000000.00"), Decimal("0.065"), 365) == Decimal("65000.00")
    assert interest_for_days(Decimal("0"), Decimal("0.065"), 30) == Decimal("0.00")


@pytest.fixture
def facility(market):
    facility = facility_with_pool(holdings={"BTC": "10"}, opened_on=datetime.date(2026, 11, 20))
    drawdown_create(facility=facility, amount="1000000.00", actor=SYSTEM)
    return facility


def test_interest_accrues_for_the_days_since_the_last_accrual_and_only_once_per_date(facility):
    friday = datetime.date(2026, 11, 20)
    monday = datetime.date(2026, 11, 23)
    first = interest_accrue(facility=facility, accrual_date=friday, actor=SYSTEM)
    assert (first.days, first.amount.amount) == (1, Decimal("178.08"))
    second = interest_accrue(facility=facility, accrual_date=monday, actor=SYSTEM)
    assert (second.days, second.amount.amount) == (3, Decimal("534.25"))  # Saturday, Sunday, Monday
    with writes_nothing():
        again = interest_accrue(facility=facility, accrual_date=monday, actor=SYSTEM)
    assert again == second
    assert facility_debt(facility).interest == Decimal("712.33")


def test_an_accrual_for_an_earlier_date_is_refused(facility):
    interest_accrue(facility=facility, accrual_date=datetime.date(2026, 11, 23), actor=SYSTEM)
    with writes_nothing(), pytest.raises(InvalidInput, match="already accrued to 2026-11-23"):
        interest_accrue(facility=facility, accrual_date=datetime.date(2026, 11, 21), actor=SYSTEM)


def test_a_floating_rate_is_hibor_plus_spread(market):
    facility = facility_with_pool(
        holdings={"BTC": "10"},
        rate_kind=RateKind.FLOATING,
        fixed_rate=None,
        base_rate_name="HIBOR_1M",
        spread="0.025",
        opened_on=datetime.date(2026, 11, 20),
    )
    drawdown_create(facility=facility, amount="1000000.00", actor=SYSTEM)
    with (
        writes_nothing(),
        pytest.raises(InvalidInput, match="There is no HIBOR_1M rate on or before 2026-11-20"),
    ):
        interest_accrue(facility=facility, accrual_date=datetime.date(2026, 11, 20), actor=SYSTEM)
    base_rate_record(name="HIBOR_1M", rate="0.04", effective_on=datetime.date(2026, 11, 1), actor=SYSTEM)
    accrual = interest_accrue(facility=facility, accrual_date=datetime.date(2026, 11, 20), actor=SYSTEM)
    assert accrual.annual_rate == Decimal("0.065")
    assert accrual.amount.amount == Decimal("178.08")


def test_accrue_all_covers_every_open_facility(facility, market):
    other = facility_with_pool(holdings={"BTC": "1"}, opened_on=datetime.date(2026, 11, 20))
    assert interest_accrue_all(accrual_date=datetime.date(2026, 11, 20), actor=SYSTEM) == 2
    assert InterestAccrual.objects.filter(facility=other, amount=0).exists()  # no principal, no interest
