"""The set-based sweep on PostgreSQL agrees to the cent with the pure calculations, writes only what
changed, and revalues only who holds what moved."""

import datetime
import random
from decimal import Decimal

import pytest
from django.test import override_settings

from accounts.audit import SYSTEM
from collateral.services import asset_update, collateral_deposit, pool_open
from financing.enums import MarginStatus
from financing.lending.services import drawdown_create, facility_open
from financing.models import Facility, MarginState, RatioSnapshot, SweepRun
from financing.monitoring.cycle import monitoring_cycle_run
from financing.monitoring.sweep import facility_figures, sweep_run
from financing.selectors import facility_pool
from ledger.enums import AccountKind
from ledger.services import account_for
from tests.accounts.factories import ClientFactory, CreditProfileFactory
from tests.collateral.factories import fx, price
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db


def state_rows():
    return {
        s.facility_id: (s.market_value, s.margin_value, s.debt, s.margin_ratio, s.status)
        for s in MarginState.objects.all()
    }


def test_the_sql_sweep_agrees_with_the_calculations_to_the_cent(market):
    rng = random.Random(20261125)
    asset_update(asset=market["0005.HK"], actor=SYSTEM, concentration_limit="0.30")
    for _ in range(40):
        holdings = {}
        for symbol, _low, high, places in [("BTC", 0, 3, 8), ("ETH", 0, 40, 18), ("0700.HK", 0, 5000, 0),
                                          ("0005.HK", 0, 9000, 0), ("HKD", 0, 500000, 2), ("USD", 0, 50000, 2)]:  # fmt: skip
            if rng.random() < 0.6:
                quantity = (
                    Decimal(rng.randint(1, 10**places * high)) / Decimal(10**places) if high else Decimal(0)
                )
                if quantity > 0:
                    holdings[symbol] = str(quantity)
        facility = facility_with_pool(holdings=holdings, limit="50000000", credit_limit="50000000")
        room = facility_figures([facility.client_id])[0][2] * Decimal("0.8")
        if room >= 1:
            drawdown_create(facility=facility, amount=str(room.quantize(Decimal("1"))), actor=SYSTEM)
    price("0700.HK", "389.37")  # unround prices so the rounding rules matter
    price("BTC", "97123.45678")
    fx("USD", "7.7912345")
    sweep_run(trigger="test")
    from_sql = state_rows()
    from_python = {f[0]: f[1:] for f in facility_figures(None)}
    assert from_sql == from_python
    assert len(from_sql) == 40


@pytest.mark.usefixtures("every_change_written")  # market values of facilities with no debt
@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_the_cents_of_a_very_large_pool_are_kept(market):
    """PostgreSQL carries a quotient to about 16 significant digits unless told otherwise: a margin value of
    HK$20,000,000,000,000,000.01 (cash, no haircut) keeps its cent, from the positions and from the fixed
    part."""
    facility = facility_with_pool(holdings={"HKD": "20000000000000000.01", "BTC": "1"})
    sweep_run(trigger="test")
    sweep_run(trigger="test")
    price("BTC", "90000")
    assert sweep_run(symbols=["BTC"], trigger="test").run.valued_from_fixed_part == 1
    state = MarginState.objects.get(facility=facility)
    assert state.margin_value == Decimal("20000000000000000.01") + Decimal("280800.00")
    assert state_rows() == {f[0]: f[1:] for f in facility_figures(None)}


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_facility_opened_since_the_last_sweep_is_taken_in_by_the_next_price_move(market):
    """A client's pool was filled while the client had no facility (in no sweep's scope); a facility opened
    since, with nothing posted, is valued by the next price-driven sweep, whatever moved."""
    client = ClientFactory()
    CreditProfileFactory(client=client)
    pool = pool_open(client=client, actor=SYSTEM)
    collateral_deposit(pool=pool, asset=market["BTC"], quantity="1", actor=SYSTEM)
    sweep_run(trigger="test")
    facility = facility_open(client=client, limit="5000000.00", fixed_rate="0.065", actor=SYSTEM)
    price("ETH", "3900")
    assert sweep_run(symbols=["ETH"], trigger="test").facilities_valued == 1
    assert MarginState.objects.get(facility=facility).market_value == Decimal("780000.00")
    assert state_rows() == {f[0]: f[1:] for f in facility_figures(None)}


def test_a_facility_whose_client_has_no_pool_is_valued_at_nothing(market):
    """Every facility opens with a pool, but the data may lack one: the sweep values it at zero, as the
    calculations do, rather than leaving it out."""
    client = ClientFactory()
    accounts = {kind: account_for(kind=kind, client=client, key="F") for kind in
                (AccountKind.LOAN_PRINCIPAL, AccountKind.INTEREST_RECEIVABLE, AccountKind.FEES_RECEIVABLE)}  # fmt: skip
    facility = Facility.objects.create(
        reference="F-NO-POOL", client=client, limit=Decimal("1000000"), fixed_rate=Decimal("0.065"),
        opened_on=datetime.date(2026, 12, 1), principal_account=accounts[AccountKind.LOAN_PRINCIPAL],
        interest_account=accounts[AccountKind.INTEREST_RECEIVABLE], fees_account=accounts[AccountKind.FEES_RECEIVABLE],
    )  # fmt: skip
    sweep_run(trigger="test")
    price("BTC", "90000")
    sweep_run(symbols=["BTC"], trigger="test")
    state = MarginState.objects.get(facility=facility)
    assert (state.market_value, state.margin_value, state.status) == (0, 0, MarginStatus.NO_DEBT)
    assert state_rows() == {f[0]: f[1:] for f in facility_figures(None)}


def test_a_second_sweep_on_the_same_prices_writes_nothing(market):
    facility_with_pool(holdings={"BTC": "1"})
    first = monitoring_cycle_run(trigger="test")
    assert (first.facilities_valued, first.states_changed, first.snapshots_written) == (1, 1, 1)
    second = monitoring_cycle_run(trigger="test")
    assert (
        second.facilities_valued,
        second.states_changed,
        second.snapshots_written,
        second.ladder_actions,
    ) == (1, 0, 0, 0)
    assert RatioSnapshot.objects.count() == 1


def test_a_snapshot_is_written_whenever_the_ratio_moves(market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="100000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("BTC", "90000")
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    ratios = list(
        RatioSnapshot.objects.filter(facility=facility)
        .order_by("taken_at")
        .values_list("margin_ratio", flat=True)
    )
    assert ratios == [Decimal("0.32051282"), Decimal("0.35612536")]  # 100,000/312,000 then 100,000/280,800


@pytest.mark.usefixtures("every_change_written")  # market values of facilities with no debt
@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_only_holders_of_the_moved_assets_are_revalued(market):
    btc_holder = facility_with_pool(holdings={"BTC": "1"})
    tencent_holder = facility_with_pool(holdings={"0700.HK": "1000"})
    monitoring_cycle_run(trigger="test")
    price("BTC", "95000")
    result = monitoring_cycle_run(symbols=["BTC"], trigger="test")
    assert result.facilities_valued == 1
    assert MarginState.objects.get(facility=btc_holder).market_value == Decimal("741000.00")
    assert MarginState.objects.get(facility=tencent_holder).market_value == Decimal("400000.00")


@pytest.mark.usefixtures("every_change_written")  # market values of facilities with no debt
def test_clients_posted_to_since_the_last_sweep_are_revalued_too(market):
    facility = facility_with_pool(holdings={"0700.HK": "1000"})
    monitoring_cycle_run(trigger="test")
    collateral_deposit(pool=facility_pool(facility), asset=market["HKD"], quantity="1000.00", actor=SYSTEM)
    result = monitoring_cycle_run(
        symbols=["BTC"], trigger="test"
    )  # nobody holds BTC; the deposit brings this client in
    assert result.facilities_valued == 1
    assert MarginState.objects.get(facility=facility).market_value == Decimal("401000.00")


def test_every_run_is_recorded(market):
    facility_with_pool(holdings={"BTC": "1"})
    monitoring_cycle_run(symbols=["BTC"], trigger="prices")
    run = SweepRun.objects.get()
    assert run.trigger == "prices"
    assert run.symbols == ["BTC"]
    assert run.finished_at is not None
    assert run.facilities_valued == 1
    assert run.scope_ms + run.ladder_ms <= run.duration_ms  # parts of the whole, each measured once


def test_a_price_driven_sweep_reads_the_debt_of_clients_posted_to_and_keeps_the_others(market):
    """In a sweep after a price move the debt of a client nothing was posted to is the one its margin state
    holds (only postings change a debt); a client with a drawdown since is read from the ledger."""
    quiet = facility_with_pool(holdings={"BTC": "1"})
    busy = facility_with_pool(holdings={"BTC": "1"})
    for facility in (quiet, busy):
        drawdown_create(facility=facility, amount="100000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    with override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0):
        monitoring_cycle_run(trigger="test")  # now the first drawdowns are behind the last sweep
        drawdown_create(facility=busy, amount="20000.00", actor=SYSTEM)
        price("BTC", "95000")
        result = monitoring_cycle_run(symbols=["BTC"], trigger="test")
    assert result.facilities_valued == 2
    debts = dict(MarginState.objects.values_list("facility_id", "debt"))
    assert debts == {quiet.pk: Decimal("100000.00"), busy.pk: Decimal("120000.00")}
    figures = {row[0]: row[1:] for row in facility_figures([quiet.client_id, busy.client_id])}
    for state in MarginState.objects.all():
        assert figures[state.facility_id] == (
            state.market_value, state.margin_value, state.debt, state.margin_ratio, state.status)  # fmt: skip


def test_a_run_for_given_clients_does_not_hide_a_posting_from_the_next_price_driven_sweep(market):
    """A client posted to before a run for other clients is still read from the ledger by the next sweep
    after a price move: that run did not look at it, so it is not where "posted to since" starts."""
    posted, other = (facility_with_pool(holdings={"BTC": "1"}) for _ in range(2))
    drawdown_create(facility=posted, amount="100000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    with override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0):
        monitoring_cycle_run(trigger="test")  # the first drawdown is now behind the last sweep
        drawdown_create(facility=posted, amount="20000.00", actor=SYSTEM)
        monitoring_cycle_run(clients=[other.client_id], trigger="movement")
        price("BTC", "95000")
        monitoring_cycle_run(symbols=["BTC"], trigger="prices")
    assert MarginState.objects.get(facility=posted).debt == Decimal("120000.00")
    assert list(SweepRun.objects.order_by("started_at").values_list("scope", flat=True)) == [
        "all", "all", "clients", "moved"]  # fmt: skip
