import re
from decimal import Decimal

import pytest
from djmoney.money import Money

from accounts.audit import SYSTEM
from collateral.selectors import pool_holdings
from financing import exceptions as refusals
from financing.lending.interest import interest_accrue
from financing.lending.services import collateral_withdraw, drawdown_create, fee_charge, repayment_create
from financing.selectors import facility_debt, facility_pool, facility_valuation
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def facility(market):
    """1 BTC and HKD 100,000: LV 412,000. Drawn 300,000."""
    facility = facility_with_pool(holdings={"BTC": "1", "HKD": "100000.00"})
    drawdown_create(facility=facility, amount="300000.00", actor=SYSTEM)
    return facility


def test_a_repayment_pays_fees_then_interest_then_principal(facility):
    fee_charge(facility=facility, amount="150.00", description="Arrangement fee", actor=SYSTEM)
    interest_accrue(
        facility=facility, accrual_date=facility.opened_on, actor=SYSTEM
    )  # 1 day: 300,000 × 6.5% / 365
    debt = facility_debt(facility)
    assert debt.interest == Decimal("53.42")
    repayment = repayment_create(facility=facility, amount="1000.00", actor=SYSTEM)
    assert repayment.to_fees == Money("150.00", "HKD")
    assert repayment.to_interest == Money("53.42", "HKD")
    assert repayment.to_principal == Money("796.58", "HKD")
    assert facility_debt(facility).total == Decimal("299203.42")


def test_a_repayment_above_the_debt_is_refused(facility):
    with (
        writes_nothing(),
        pytest.raises(refusals.RepaymentRefused, match=re.escape("more than the debt of HK$300,000.00")),
    ):
        repayment_create(facility=facility, amount="300000.01", actor=SYSTEM)


def test_a_full_repayment_clears_the_debt(facility):
    repayment_create(facility=facility, amount="300000.00", actor=SYSTEM)
    assert facility_debt(facility).total == 0
    assert facility_valuation(facility).margin_ratio == 0


def test_a_withdrawal_within_max_advance_is_allowed(facility, market):
    pool = facility_pool(facility)
    # Max advance 85%: LV may fall to 300,000 / 0.85 = 352,941.18; HKD 59,058.82 may leave.
    collateral_withdraw(pool=pool, asset=market["HKD"], quantity="59058.82", actor=SYSTEM)
    assert pool_holdings(pool)["HKD"] == Decimal("40941.18")


def test_a_withdrawal_that_lifts_the_ratio_above_max_advance_is_refused(facility, market):
    pool = facility_pool(facility)
    with writes_nothing(), pytest.raises(refusals.WithdrawalRefused) as refusal:
        collateral_withdraw(pool=pool, asset=market["HKD"], quantity="59058.83", actor=SYSTEM)
    assert refusal.value.code == "max_advance_exceeded"
    assert "above the max advance of 85.00%" in str(refusal.value)


def test_more_than_the_pool_holds_cannot_be_withdrawn(facility, market):
    pool = facility_pool(facility)
    with (
        writes_nothing(),
        pytest.raises(refusals.WithdrawalRefused, match="The pool holds 1 BTC; 2 cannot be withdrawn"),
    ):
        collateral_withdraw(pool=pool, asset=market["BTC"], quantity="2", actor=SYSTEM)
    with writes_nothing(), pytest.raises(refusals.WithdrawalRefused, match="holds 0 ETH"):
        collateral_withdraw(pool=pool, asset=market["ETH"], quantity="1", actor=SYSTEM)


def test_with_no_debt_everything_may_be_withdrawn(market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    collateral_withdraw(pool=facility_pool(facility), asset=market["BTC"], quantity="1", actor=SYSTEM)
    assert pool_holdings(facility_pool(facility)) == {}
