"""A sweep after a crypto move values an untouched pool from its stored fixed part and the new crypto prices,
and agrees to the cent with the pure calculations all the same: whenever the part may no longer hold (a
posting, a new security price, FX rate or term, a concentration cut that now applies) the pool is valued
from its positions, and its part stored again."""

import dataclasses
import random
from decimal import Decimal

import pytest
from django.test import override_settings

from accounts.audit import SYSTEM
from collateral.models import CurrentPrice
from collateral.services import asset_update, collateral_deposit
from financing.enums import FacilityStatus
from financing.lending.services import (
    collateral_withdraw,
    drawdown_create,
    facility_open,
    facility_status_change,
)
from financing.models import MarginState
from financing.monitoring.cycle import monitoring_cycle_run
from financing.monitoring.sweep import AssetUnit, asset_units, facility_figures, fixed_basis, sweep_run
from financing.selectors import facility_pool
from tests.collateral.factories import fx, price
from tests.financing.factories import facility_with_pool

# These compare the stored figures with the calculations to the cent after every move.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("every_change_written")]

HOLDINGS = [  # symbol, largest quantity, decimals
    ("BTC", 3, 8), ("ETH", 40, 18), ("0700.HK", 5000, 0), ("0005.HK", 9000, 0), ("HKD", 500000, 2),
    ("USD", 50000, 2),
]  # fmt: skip


def part_of(facility) -> tuple:
    """The fixed part stored on the facility's margin state: market value, margin value, no cut from, crypto."""
    state = MarginState.objects.get(facility=facility)
    return state.fixed_market_value, state.fixed_margin_value, state.fixed_uncapped_from, state.fixed_crypto


def stored_parts():
    return MarginState.objects.exclude(fixed_crypto=None)


def assert_the_states_agree_with_the_calculations():
    states = {
        s.facility_id: (s.market_value, s.margin_value, s.debt, s.margin_ratio, s.status)
        for s in MarginState.objects.exclude(facility__status=FacilityStatus.CLOSED)
    }
    assert states == {row[0]: row[1:] for row in facility_figures(None)}


def book(count: int, seed: int, always: tuple[str, ...] = ()) -> list:
    """``count`` facilities with random holdings of every kind (and of ``always`` in each), each drawn to 80%
    of its margin value."""
    rng = random.Random(seed)
    facilities = []
    for _ in range(count):
        holdings = {}
        for symbol, high, places in HOLDINGS:
            if symbol in always or rng.random() < 0.6:
                holdings[symbol] = str(Decimal(rng.randint(1, 10**places * high)) / Decimal(10**places))
        facility = facility_with_pool(holdings=holdings, limit="50000000", credit_limit="50000000")
        room = facility_figures([facility.client_id])[0][2] * Decimal("0.8")
        if room >= 1:
            drawdown_create(facility=facility, amount=str(room.quantize(Decimal("1"))), actor=SYSTEM)
        facilities.append(facility)
    return facilities


def settled_book(count: int, seed: int, always: tuple[str, ...] = ()) -> list:
    """A book valued twice, so that nothing posted to it is newer than the last sweep (with no look-back)."""
    facilities = book(count, seed, always)
    monitoring_cycle_run(trigger="test")
    monitoring_cycle_run(trigger="test")
    return facilities


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_crypto_moves_value_untouched_pools_from_their_fixed_parts_to_the_cent(market):
    """Unround prices and limits that bind on some moves and not on others: every sweep agrees with the
    calculations, and the pools no cut reaches are valued from their fixed parts."""
    asset_update(asset=market["0005.HK"], actor=SYSTEM, concentration_limit="0.30")
    asset_update(asset=market["ETH"], actor=SYSTEM, concentration_limit="0.45")
    price("0700.HK", "389.37")
    fx("USD", "7.7912345")
    settled_book(40, seed=20261125)
    assert stored_parts().count() == 40
    fast = []
    for symbol, new_price in [("BTC", "97123.45678"), ("ETH", "3512.3456"), ("BTC", "41000.01"),
                              ("ETH", "9100.5"), ("BTC", "150000"), ("BTC", "12.34")]:  # fmt: skip
        price(symbol, new_price)
        result = sweep_run(symbols=[symbol], trigger="test")
        assert_the_states_agree_with_the_calculations()
        fast.append(result.run.valued_from_fixed_part)
    assert fast[0] > 0  # the first move: most pools from their parts


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_pool_is_valued_from_its_part_down_to_the_cent_where_no_cut_applies_and_not_below(market):
    """HSBC HK$30,000 with a 50% limit: no cut from a pool value of HK$60,000.00. BTC at US$10,000 puts the
    pool exactly there; at US$9,999.995 it is a cent below, where the cut takes a cent off HSBC's value."""
    facility = facility_with_pool(holdings={"0005.HK": "300", "BTC": "0.25", "HKD": "10500.00"})
    monitoring_cycle_run(trigger="test")
    monitoring_cycle_run(trigger="test")
    assert part_of(facility)[2] == Decimal("60000.00")
    for btc, from_part, market_value, margin_value in [("10000", 1, "60000.00", "40800.00"),
                                                      ("9999.995", 0, "59999.99", "40799.98")]:  # fmt: skip
        price("BTC", btc)
        result = sweep_run(symbols=["BTC"], trigger="test")
        assert result.run.valued_from_fixed_part == from_part
        state = MarginState.objects.get(facility=facility)
        assert (state.market_value, state.margin_value) == (Decimal(market_value), Decimal(margin_value))
        assert_the_states_agree_with_the_calculations()


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_pool_posted_to_since_the_last_sweep_is_valued_from_its_positions(market):
    posted, _quiet = (facility_with_pool(holdings={"BTC": "1", "0700.HK": "100"}) for _ in range(2))
    monitoring_cycle_run(trigger="test")
    monitoring_cycle_run(trigger="test")
    collateral_deposit(pool=facility_pool(posted), asset=market["0700.HK"], quantity="900", actor=SYSTEM)
    price("BTC", "90000")
    result = sweep_run(symbols=["BTC"], trigger="test")
    assert (result.facilities_valued, result.run.valued_from_fixed_part) == (2, 1)
    assert_the_states_agree_with_the_calculations()
    market_value, margin_value, _, crypto = part_of(posted)
    assert (market_value, margin_value) == (Decimal("400000.00"), Decimal("280000.00"))
    assert {symbol: Decimal(quantity) for symbol, quantity in crypto.items()} == {"BTC": 1}


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_full_sweep_after_a_posting_works_the_pool_s_part_out_again(market):
    """A full sweep values every pool from its positions, and stores the parts of those posted to: the price
    moves after it trust them."""
    facility = facility_with_pool(holdings={"BTC": "1", "0700.HK": "100"})
    monitoring_cycle_run(trigger="test")
    monitoring_cycle_run(trigger="test")
    collateral_deposit(pool=facility_pool(facility), asset=market["0700.HK"], quantity="900", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("BTC", "90000")
    result = sweep_run(symbols=["BTC"], trigger="test")
    assert result.run.valued_from_fixed_part == 1
    assert_the_states_agree_with_the_calculations()


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_client_back_with_a_new_facility_is_valued_from_the_pool_as_it_now_is(market):
    """While a client has no open facility its pool is in no sweep's scope, so what left it then is not in
    the part stored before: a new facility's first sweep works the part out again."""
    first = facility_with_pool(holdings={"BTC": "1", "HKD": "500000.00"})
    monitoring_cycle_run(trigger="test")
    monitoring_cycle_run(trigger="test")
    facility_status_change(facility=first, status=FacilityStatus.CLOSED, actor=SYSTEM)
    collateral_withdraw(pool=facility_pool(first), asset=market["HKD"], quantity="500000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    monitoring_cycle_run(trigger="test")
    second = facility_open(client=first.client, limit="5000000.00", fixed_rate="0.065", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("BTC", "90000")
    assert sweep_run(symbols=["BTC"], trigger="test").run.valued_from_fixed_part == 1
    assert MarginState.objects.get(facility=second).market_value == Decimal("702000.00")
    assert_the_states_agree_with_the_calculations()


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_pool_emptied_since_the_last_sweep_keeps_no_part_of_what_it_held(market):
    facility = facility_with_pool(holdings={"BTC": "1", "0700.HK": "100"})
    monitoring_cycle_run(trigger="test")
    monitoring_cycle_run(trigger="test")
    pool = facility_pool(facility)
    for symbol, quantity in [("BTC", "1"), ("0700.HK", "100")]:
        collateral_withdraw(pool=pool, asset=market[symbol], quantity=quantity, actor=SYSTEM)
    sweep_run(symbols=["BTC"], trigger="test")
    assert part_of(facility) == (0, 0, None, {})
    price("BTC", "90000")
    sweep_run(symbols=["BTC"], trigger="test")
    assert MarginState.objects.get(facility=facility).market_value == 0
    assert_the_states_agree_with_the_calculations()


CHANGES = {
    "a security's price": lambda market: price("0700.HK", "401.5"),
    "an FX rate": lambda market: fx("USD", "7.81"),
    "a concentration limit": lambda market: asset_update(
        asset=market["0700.HK"], actor=SYSTEM, concentration_limit="0.20"
    ),
    "an asset's eligibility": lambda market: asset_update(
        asset=market["0005.HK"], actor=SYSTEM, eligible=False
    ),
    "a crypto losing its price": lambda market: CurrentPrice.objects.filter(asset_id="ETH").delete(),
}


@pytest.mark.parametrize("change", CHANGES)
@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_change_to_what_the_fixed_parts_rest_on_values_every_pool_from_its_positions(market, change):
    """Even in a sweep that names only BTC (every pool here holds some): the stored parts were worked out on
    other terms."""
    settled_book(12, seed=7, always=("BTC",))
    CHANGES[change](market)
    price("BTC", "99000")
    result = sweep_run(symbols=["BTC"], trigger="test")
    assert result.run.valued_from_fixed_part == 0
    assert_the_states_agree_with_the_calculations()
    assert set(stored_parts().values_list("fixed_basis", flat=True)) == {fixed_basis(asset_units())}
    price("BTC", "98000")  # and the parts stored on the new terms serve the next move
    result = sweep_run(symbols=["BTC"], trigger="test")
    assert result.run.valued_from_fixed_part > 0
    assert_the_states_agree_with_the_calculations()


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_only_the_parts_that_may_have_changed_are_worked_out_again_and_stored(market):
    facilities = settled_book(6, seed=3)

    def written():
        return set(stored_parts().values_list("facility_id", "fixed_valued_at"))

    before = written()
    price("BTC", "95000")
    assert sweep_run(symbols=["BTC"], trigger="test").fixed_parts_stored == 0
    assert sweep_run(trigger="test").fixed_parts_stored == 0  # every pool from its positions
    assert written() == before
    drawdown_create(facility=facilities[0], amount="1.00", actor=SYSTEM)  # posted to; its holdings the same
    assert sweep_run(trigger="test").fixed_parts_stored == 0
    collateral_deposit(pool=facility_pool(facilities[1]), asset=market["HKD"], quantity="1.00", actor=SYSTEM)
    assert sweep_run(trigger="test").fixed_parts_stored == 1


def test_the_fingerprint_follows_every_term_but_the_crypto_prices():
    units = [
        AssetUnit("BTC", Decimal("780000"), Decimal("0.6"), None, True, crypto=True),
        AssetUnit("0700.HK", Decimal("400"), Decimal("0.3"), Decimal("0.5"), True),
    ]
    basis = fixed_basis(units)
    assert fixed_basis([dataclasses.replace(units[0], unit_value=Decimal("700000")), units[1]]) == basis
    assert fixed_basis([dataclasses.replace(units[0], haircut=Decimal("0.7")), units[1]]) == basis
    security_changes = [("unit_value", Decimal("400.01")), ("unit_value", None), ("haircut", Decimal("0.35")),
                        ("concentration_limit", None), ("eligible", False)]  # fmt: skip
    others = [
        [dataclasses.replace(units[0], unit_value=None), units[1]],
        [dataclasses.replace(units[0], crypto=False), units[1]],
        *([units[0], dataclasses.replace(units[1], **{name: value})] for name, value in security_changes),
        units[:1],
    ]
    assert basis not in {fixed_basis(other) for other in others}
    assert len({fixed_basis(other) for other in others}) == len(others)
