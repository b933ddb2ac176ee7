import datetime
import re
from decimal import Decimal

import pytest
from django.test import override_settings
from djmoney.money import Money

from accounts.audit import SYSTEM
from accounts.enums import KycStatus
from core.exceptions import InvalidInput
from financing import exceptions as refusals
from financing.lending.services import drawdown_create
from financing.margin_calls.services import margin_call_issue
from financing.models import Drawdown
from financing.selectors import facility_debt, facility_valuation
from ledger.selectors import balances_from_legs, balances_projected
from tests.accounts.factories import ClientFactory
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db

# 1 BTC (LV 312,000) + 1,000 Tencent (LV 280,000 but capped at 50% of the pool: see calculations tests)
# Here a pool of 1 BTC and HKD 100,000 cash: MV 880,000, LV 412,000; 85% of it is 350,200.


@pytest.fixture
def facility(market):
    return facility_with_pool(holdings={"BTC": "1", "HKD": "100000.00"})


def test_a_drawdown_lends_cash_and_records_it(facility):
    drawdown = drawdown_create(facility=facility, amount="300000.00", actor=SYSTEM)
    assert drawdown.amount == Money("300000.00", "HKD")
    assert drawdown.margin_ratio_after == Decimal("0.72815534")  # 300,000 / 412,000
    assert facility_debt(facility).principal == Decimal("300000.00")
    assert balances_projected() == balances_from_legs()


def test_a_drawdown_up_to_exactly_max_advance_is_allowed(facility):
    drawdown_create(facility=facility, amount="350200.00", actor=SYSTEM)
    assert facility_valuation(facility).margin_ratio == Decimal("0.85")


def test_a_drawdown_above_max_advance_is_refused_with_the_room_left(facility):
    with writes_nothing(), pytest.raises(refusals.MaxAdvanceExceeded) as refusal:
        drawdown_create(facility=facility, amount="350200.01", actor=SYSTEM)
    assert str(refusal.value) == (
        "A drawdown of HK$350,200.01 would lift the margin ratio to 85.00%, above the max advance of 85.00%; "
        "at most HK$350,200.00 can be drawn."
    )
    assert refusal.value.details == {"available": "350200.00"}


def test_a_drawdown_over_the_facility_limit_is_refused(market):
    facility = facility_with_pool(holdings={"BTC": "10"}, limit="1000000.00")
    drawdown_create(facility=facility, amount="800000.00", actor=SYSTEM)
    with writes_nothing(), pytest.raises(refusals.FacilityLimitExceeded) as refusal:
        drawdown_create(facility=facility, amount="200000.01", actor=SYSTEM)
    assert "above the facility limit of HK$1,000,000.00; at most HK$200,000.00 can be drawn" in str(
        refusal.value
    )


def test_a_drawdown_over_the_credit_limit_is_refused(market):
    facility = facility_with_pool(holdings={"BTC": "10"}, limit="3000000.00", credit_limit="1000000.00")
    with (
        writes_nothing(),
        pytest.raises(
            refusals.CreditLimitExceeded, match=re.escape("approved credit limit of HK$1,000,000.00")
        ),
    ):
        drawdown_create(facility=facility, amount="1000000.01", actor=SYSTEM)


@pytest.mark.parametrize(
    ("client_overrides", "reason"),
    [
        ({"kyc_status": KycStatus.PENDING}, "KYC is pending, not approved"),
        (
            {"pi_expires_on": datetime.date(2020, 1, 1), "pi_assessed_on": datetime.date(2019, 1, 1)},
            "expired on 2020-01-01",
        ),
        (
            {"kind": "individual", "pi_portfolio_value": Money("100", "HKD")},
            "an individual needs a portfolio of at least HK$8,000,000",
        ),
    ],
)
def test_a_client_who_is_not_eligible_gets_nothing(market, client_overrides, reason):
    facility = facility_with_pool(holdings={"BTC": "1"}, client=ClientFactory(**client_overrides))
    with writes_nothing(), pytest.raises(refusals.NotEligible) as refusal:
        drawdown_create(facility=facility, amount="1000.00", actor=SYSTEM)
    assert reason in str(refusal.value)
    assert refusal.value.code == "not_eligible"


def test_no_new_advances_with_an_open_margin_call(facility, market):
    drawdown_create(facility=facility, amount="350000.00", actor=SYSTEM)
    price("BTC", "60000")  # LV: 1 × 60,000 × 7.8 × 0.4 + 100,000 = 287,200 < 350,000
    margin_call_issue(facility=facility, actor=SYSTEM)
    price("BTC", "200000")  # the ratio recovers, but the call is still open
    with writes_nothing(), pytest.raises(refusals.OpenMarginCall, match="no new advances until it is cured"):
        drawdown_create(facility=facility, amount="1.00", actor=SYSTEM)


@override_settings(
    BROKER_CAPITAL_HKD=Decimal("100000"),
    FIRM_LOAN_TO_CAPITAL_MULTIPLE=Decimal("5"),
    CLIENT_LOAN_SHARE_OF_CAPITAL=Decimal("3"),
)
def test_total_margin_loans_stay_within_five_times_capital(market):
    first = facility_with_pool(holdings={"BTC": "10"})
    second = facility_with_pool(holdings={"BTC": "10"})
    drawdown_create(facility=first, amount="300000.00", actor=SYSTEM)
    drawdown_create(facility=second, amount="200000.00", actor=SYSTEM)  # 500,000 = 5 × capital: allowed
    with (
        writes_nothing(),
        pytest.raises(refusals.FirmLimitExceeded, match=re.escape("above 5 × capital (HK$500,000.00)")),
    ):
        drawdown_create(facility=second, amount="0.01", actor=SYSTEM)


@override_settings(BROKER_CAPITAL_HKD=Decimal("1000000"), CLIENT_LOAN_SHARE_OF_CAPITAL=Decimal("0.25"))
def test_one_clients_loans_stay_within_their_share_of_capital(market):
    facility = facility_with_pool(holdings={"BTC": "10"})
    with (
        writes_nothing(),
        pytest.raises(
            refusals.ClientConcentrationExceeded, match=re.escape("per-client cap of 25.00% of capital")
        ),
    ):
        drawdown_create(facility=facility, amount="250000.01", actor=SYSTEM)


@pytest.mark.parametrize("amount", ["0", "-1", "1.001", "abc", 100.5])
def test_bad_amounts_are_refused(facility, amount):
    with writes_nothing(), pytest.raises(InvalidInput):
        drawdown_create(facility=facility, amount=amount, actor=SYSTEM)


def test_an_idempotency_key_draws_once(facility):
    first = drawdown_create(facility=facility, amount="1000.00", actor=SYSTEM, idempotency_key="abc")
    with writes_nothing():
        second = drawdown_create(facility=facility, amount="1000.00", actor=SYSTEM, idempotency_key="abc")
    assert first == second
    assert Drawdown.objects.count() == 1
