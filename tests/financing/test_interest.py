import datetime
from decimal import Decimal

import pytest
import time_machine

from accounts.audit import SYSTEM
from core.calendar import HONG_KONG
from core.exceptions import InvalidInput
from financing.calculations import interest_for_days
from financing.enums import RateKind
from financing.lending.interest import base_rate_record, interest_accrue, interest_accrue_all
from financing.lending.services import drawdown_create, repayment_create
from financing.models import InterestAccrual
from financing.selectors import facility_debt
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


def test_act_365():
    assert interest_for_days(Decimal("1000000.00"), Decimal("0.065"), 1) == Decimal("178.08")  # 178.0821…
    assert interest_for_days(Decimal("1000000.00"), Decimal("0.065"), 3) == Decimal("534.25")  # 534.2466…
    assert interest_for_days(Decimal("1000000.00"), Decimal("0.065"), 365) == Decimal("65000.00")
    assert interest_for_days(Decimal("0"), Decimal("0.065"), 30) == Decimal("0.00")


def at(day: int, hour: int, minute: int = 0):
    """A moment in Hong Kong in the week of Friday 20 November 2026 (the clock stands still there)."""
    return time_machine.travel(datetime.datetime(2026, 11, day, hour, minute, tzinfo=HONG_KONG), tick=False)


FRIDAY, SATURDAY, SUNDAY, MONDAY, TUESDAY = 20, 21, 22, 23, 24


@pytest.fixture
def facility(market):
    """HK$1,000,000 drawn on Friday morning at 6.5%."""
    with at(FRIDAY, 10):
        facility = facility_with_pool(holdings={"BTC": "10"}, opened_on=datetime.date(2026, 11, 20))
        drawdown_create(facility=facility, amount="1000000.00", actor=SYSTEM)
    return facility


@pytest.fixture
def floating(market):
    """HK$1,000,000 drawn on Friday morning at HIBOR 1M + 2.5%."""
    with at(FRIDAY, 10):
        facility = facility_with_pool(
            holdings={"BTC": "10"},
            rate_kind=RateKind.FLOATING,
            fixed_rate=None,
            base_rate_name="HIBOR_1M",
            spread="0.025",
            opened_on=datetime.date(2026, 11, 20),
        )
        drawdown_create(facility=facility, amount="1000000.00", actor=SYSTEM)
    return facility


def accrue(facility, day: int, *, run_at: tuple[int, int] | None = None):
    """The nightly accrual for ``day``, run when the schedule runs it (23:50) unless told otherwise."""
    with at(*(run_at or (day, 23)), 50):
        return interest_accrue(facility=facility, accrual_date=datetime.date(2026, 11, day), actor=SYSTEM)


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


def test_an_accrual_before_the_facility_opened_is_refused(facility):
    with writes_nothing(), pytest.raises(InvalidInput, match="opened on 2026-11-20; there is no interest"):
        interest_accrue(facility=facility, accrual_date=datetime.date(2026, 11, 19), actor=SYSTEM)


def test_a_floating_rate_is_hibor_plus_spread(floating):
    facility = floating
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


def test_a_drawdown_on_monday_bears_interest_from_monday_not_over_the_weekend(facility):
    accrue(facility, FRIDAY)
    with at(MONDAY, 10):
        drawdown_create(facility=facility, amount="500000.00", actor=SYSTEM)
    monday = accrue(facility, MONDAY)
    # Saturday and Sunday on 1,000,000, Monday on 1,500,000: 3,500,000 × 6.5% / 365 = 623.2876…
    assert (monday.days, monday.amount.amount) == (3, Decimal("623.29"))
    assert (monday.principal.amount, monday.annual_rate) == (Decimal("1500000.00"), Decimal("0.065"))
    assert [(d["date"], d["principal"]) for d in monday.daily] == [
        ("2026-11-21", "1000000.00"), ("2026-11-22", "1000000.00"), ("2026-11-23", "1500000.00")]  # fmt: skip


def test_a_repayment_on_sunday_lowers_the_interest_from_sunday(facility):
    accrue(facility, FRIDAY)  # 178.08
    with at(SUNDAY, 11):
        repayment_create(facility=facility, amount="600178.08", actor=SYSTEM)  # the interest, then 600,000
    monday = accrue(facility, MONDAY)
    # Saturday on 1,000,000, Sunday and Monday on 400,000: 1,800,000 × 6.5% / 365 = 320.5479…
    assert monday.amount.amount == Decimal("320.55")


def test_a_late_run_does_not_charge_a_day_for_what_was_posted_after_it(facility):
    accrue(facility, FRIDAY)
    with at(TUESDAY, 9):
        drawdown_create(facility=facility, amount="1000000.00", actor=SYSTEM)
    monday = accrue(facility, MONDAY, run_at=(TUESDAY, 10))
    assert monday.amount.amount == Decimal("534.25")  # three days on 1,000,000, not on 2,000,000


def test_a_new_base_rate_counts_from_the_day_it_takes_effect(floating):
    facility = floating
    base_rate_record(name="HIBOR_1M", rate="0.04", effective_on=datetime.date(2026, 11, 1), actor=SYSTEM)
    accrue(facility, FRIDAY)
    base_rate_record(name="HIBOR_1M", rate="0.05", effective_on=datetime.date(2026, 11, 22), actor=SYSTEM)
    monday = accrue(facility, MONDAY)
    # Saturday at 6.5%, Sunday and Monday at 7.5%: 1,000,000 × (0.065 + 0.075 × 2) / 365 = 589.0410…
    assert monday.amount.amount == Decimal("589.04")
    assert monday.annual_rate == Decimal("0.075")
    assert monday.transaction.memo.endswith("3 day(s) to 2026-11-23 at 6.5000% to 7.5000%")
