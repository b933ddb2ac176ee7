"""Forced sales through real ccxt against the local fake exchange: planning, placing exactly once,
partial fills, proceeds repaying the debt, and every guard."""

import re
from decimal import Decimal

import pytest

from accounts.audit import SYSTEM
from accounts.enums import ApprovalStatus
from accounts.exceptions import FourEyesViolation
from accounts.services import approval_request_approve
from collateral.models import CurrentPrice
from collateral.selectors import pool_holdings
from collateral.services import collateral_deposit, fx_rate_record, fx_rate_reject
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from fake_exchange import FAKE_CREDENTIALS
from fake_exchange.pytest_plugin import fake_bitstamp  # noqa: F401  (fixture)
from financing.enums import ForcedSaleStatus, PauseReason, SaleOrderStatus, SaleRoute
from financing.lending.services import drawdown_create
from financing.liquidation.forced_sales import (
    forced_sale_approve,
    forced_sale_pause,
    forced_sale_resume,
    forced_sale_step,
    sale_fill_record,
)
from financing.liquidation.kill_switch import kill_switch_engage, kill_switch_lift_request
from financing.models import ForcedSale, SaleFill
from financing.monitoring.cycle import monitoring_cycle_run
from financing.selectors import facility_debt, facility_pool, facility_valuation, stored_plan
from ledger.selectors import balances_from_legs, balances_projected
from notifications.models import Event, WebhookEndpoint
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import fx, price
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def venue(fake_bitstamp, settings):  # noqa: F811
    settings.FORCED_SALE_VENUE = {
        "name": "fake-bitstamp",
        "exchange": "bitstamp",
        "base_url": fake_bitstamp.base_url,
        "timeout_ms": 800,
        "order_type": "limit",
        "markets": {"BTC": "BTC/USD", "ETH": "ETH/USD"},
        **FAKE_CREDENTIALS,
    }
    settings.FORCED_SALE_REPRICE_SECONDS = 3600
    fake_bitstamp.set_price("BTC/USD", "70000")
    return fake_bitstamp


@pytest.fixture
def sale(market, venue):
    """1 BTC drawn to 85% at US$100,000, then BTC at US$70,000: LV 218,400 against 265,200 (121.4%)."""
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("BTC", "70000")
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    return ForcedSale.objects.get(facility=facility)


def run(sale, times=10):
    status = None
    for _ in range(times):
        status = forced_sale_step(sale_id=sale.pk)
        if status in (
            ForcedSaleStatus.FILLED,
            ForcedSaleStatus.FAILED,
            ForcedSaleStatus.CANCELLED,
            ForcedSaleStatus.PAUSED,
        ):
            break
    sale.refresh_from_db()
    return status


def ledger_is_balanced():
    return balances_projected() == balances_from_legs()


def test_a_forced_sale_sells_just_enough_and_repays_the_debt(sale, venue):
    assert run(sale) == ForcedSaleStatus.FILLED
    (order,) = sale.orders.all()
    # x ≥ (265,200 − 0.85 × 218,400) / (0.995 − 0.85 × 0.4) = 121,465.65 HKD = 0.222464557 BTC at
    # 546,000; with the cent rounding of values, 0.22246457 is the least that reaches 85% (see calculations).
    assert order.quantity == Decimal("0.22246457")
    assert order.status == SaleOrderStatus.FILLED
    assert order.limit_price == Decimal("68600")  # 2% below the oracle
    assert order.client_order_id == f"FS{sale.pk}-1"
    (fill,) = SaleFill.objects.filter(order=order)
    assert fill.price == Decimal("70000")  # the venue filled at the better price
    assert fill.proceeds == Decimal("121465.65")  # 0.22246457 × 70,000 = 15,572.5199 USD → 15,572.52 × 7.8
    debt = facility_debt(sale.facility)
    assert debt.total == Decimal("265200.00") - Decimal("121465.65")
    valuation = facility_valuation(sale.facility)
    assert valuation.margin_ratio <= Decimal("0.85")
    assert pool_holdings(facility_pool(sale.facility)) == {"BTC": Decimal("0.77753543")}
    assert len(venue.requests("create_order")) == 1
    assert ledger_is_balanced()
    types = list(Event.objects.filter(subject_id=str(sale.pk)).values_list("type", flat=True))
    assert {"forced_sale.planned", "forced_sale.submitted", "forced_sale.fill", "forced_sale.filled"} <= set(
        types
    )


def test_a_sale_keeps_the_prices_and_rates_its_plan_was_made_on(sale, venue):
    run(sale)
    btc_price = CurrentPrice.objects.get(asset_id="BTC").price
    assert btc_price.price == Decimal("70000")
    assert btc_price in sale.planned_on_prices.all()
    assert {(r.currency, r.quote) for r in sale.planned_on_fx_rates.all()} >= {("USD", "HKD")}
    # The plan is made again as fills arrive (nothing is left to sell at the end); the first one stays.
    assert sale.plan["sales"] == []
    assert Decimal(sale.first_plan["sales"][0]["quantity"]) == Decimal("0.22246457")
    assert sale.first_plan["ratio_after"] is not None
    # Read back as the pages and exports read it: decimals and the moment it was made.
    first, last = stored_plan(sale.first_plan), stored_plan(sale.plan)
    assert first.planned_at.tzinfo is not None
    assert first.planned_at < sale.planned_at
    assert (first.debt, first.margin_value, first.target) == (
        Decimal("265200.00"),
        Decimal("218400.00"),
        Decimal("0.85"),
    )
    assert [(s.asset, s.quantity) for s in first.sales] == [("BTC", Decimal("0.22246457"))]
    assert first.sales[0].market_value == Decimal("121465.66")
    assert last.sales == []
    assert last.planned_at is None
    assert stored_plan({}) is None
    # A sale not yet read back from the database holds the datetime it was given, not its ISO text.
    moment = first.planned_at
    assert stored_plan({**sale.first_plan, "planned_at": moment}).planned_at == moment


def test_partial_fills_are_followed_to_completion(sale, venue):
    venue.set_fill("partial", fraction="0.25")
    assert run(sale, times=12) == ForcedSaleStatus.FILLED
    (order,) = sale.orders.all()
    fills = list(SaleFill.objects.filter(order=order).order_by("pk"))
    assert len(fills) >= 4
    assert sum(f.quantity for f in fills) == order.quantity
    assert sale.proceeds == sum(f.proceeds for f in fills)
    assert len(venue.requests("create_order")) == 1
    assert ledger_is_balanced()


def test_a_response_lost_after_the_order_was_placed_never_places_a_second_order(sale, venue):
    venue.fail("create_order", "lost_response", seconds=2, times=1)  # placed, but the answer times out
    assert forced_sale_step(sale_id=sale.pk) in (
        ForcedSaleStatus.SUBMITTED,
        ForcedSaleStatus.PARTIALLY_FILLED,
    )
    assert len(venue.orders()) == 1
    assert run(sale) == ForcedSaleStatus.FILLED
    assert len(venue.orders()) == 1  # the retry found the order by its client id and followed it
    assert SaleFill.objects.filter(order__forced_sale=sale).count() == 1


def test_venue_errors_are_retried_a_bounded_number_of_times_then_escalated(sale, venue, settings):
    settings.FORCED_SALE_MAX_VENUE_ERRORS = 3
    venue.fail("create_order", "http_500")
    assert run(sale) == ForcedSaleStatus.PAUSED
    assert sale.pause_reason == PauseReason.VENUE_ERRORS
    assert "failed 3 times in a row: ExchangeNotAvailable" in sale.status_reason
    assert venue.orders() == []
    venue.clear_failures()
    staff = StaffFactory(role="Risk officer")
    forced_sale_resume(sale=sale, actor=staff)
    assert run(sale) == ForcedSaleStatus.FILLED


@pytest.mark.parametrize("kind", ["reject", "insufficient_funds"])
def test_rejections_and_insufficient_funds_count_as_venue_errors(sale, venue, settings, kind):
    settings.FORCED_SALE_MAX_VENUE_ERRORS = 2
    venue.fail("create_order", kind)
    assert run(sale) == ForcedSaleStatus.PAUSED
    assert sale.pause_reason == PauseReason.VENUE_ERRORS


def test_no_sale_starts_on_a_stale_price(sale, venue):
    from collateral.models import CurrentPrice

    CurrentPrice.objects.filter(asset_id="BTC").update(
        is_stale=True, stale_reason="only 1 of 3 venues agreed"
    )
    assert run(sale) == ForcedSaleStatus.PAUSED
    assert sale.pause_reason == PauseReason.STALE_PRICE
    assert "only 1 of 3 venues agreed" in sale.status_reason
    assert venue.requests("create_order") == []
    CurrentPrice.objects.filter(asset_id="BTC").update(is_stale=False, stale_reason="")
    assert run(sale) == ForcedSaleStatus.FILLED


def test_no_order_goes_out_while_a_rate_it_depends_on_awaits_confirmation(sale, venue):
    held = fx_rate_record(currency="USD", rate="0.0000000001", source="feed", actor=SYSTEM)  # a typo, held
    assert run(sale) == ForcedSaleStatus.PAUSED
    assert sale.pause_reason == PauseReason.UNCONFIRMED_PRICE
    assert sale.status_reason.startswith(
        "waiting for a second person to confirm or reject a held price (BTC: a USD/HKD rate of 0.0000000001 "
        "awaits confirmation (0.0000000001 is outside the USD/HKD peg band of 7.75–7.85"
    )
    assert venue.requests("create_order") == []
    for _ in range(3):  # it waits, paused once: not resumed only to pause again at every step
        assert forced_sale_step(sale_id=sale.pk) == ForcedSaleStatus.PAUSED
    assert Event.objects.filter(type="forced_sale.paused", subject_id=str(sale.pk)).count() == 1
    with pytest.raises(InvalidTransition, match="resumes by itself"):
        forced_sale_resume(sale=sale, actor=StaffFactory(role="Risk officer"))
    fx_rate_reject(rate=held, actor=StaffFactory(role="Risk officer"))
    assert run(sale) == ForcedSaleStatus.FILLED
    assert Event.objects.filter(
        subject_id=str(sale.pk), summary__contains="resumed: no price or rate awaits confirmation any more"
    ).exists()


def test_a_held_price_arriving_while_an_order_is_open_stops_it_before_anything_more_goes_out(sale, venue):
    venue.set_fill("never")
    assert forced_sale_step(sale_id=sale.pk) == ForcedSaleStatus.SUBMITTED  # placed; nothing fills
    price("BTC", "7000", band_check=True)  # a slipped digit from a feed: held
    assert forced_sale_step(sale_id=sale.pk) == ForcedSaleStatus.PAUSED
    sale.refresh_from_db()
    assert sale.pause_reason == PauseReason.UNCONFIRMED_PRICE
    assert "a price of 7000 USD for BTC awaits confirmation" in sale.status_reason
    assert sale.orders.get().status == SaleOrderStatus.CANCELLED
    assert len(venue.requests("create_order")) == 1


def test_a_usd_hkd_rate_in_use_outside_the_peg_pauses_a_sale_until_a_person_confirms_one(sale, venue):
    fx("USD", "7.5")  # in use without a check (recorded before the checks existed, say)
    assert run(sale) == ForcedSaleStatus.PAUSED
    assert sale.pause_reason == PauseReason.UNCONFIRMED_PRICE
    assert "the USD/HKD rate in use, 7.5, is outside its peg band of 7.75–7.85" in sale.status_reason
    venue.set_price("BTC/USD", "70000")
    fx("USD", "7.8")
    assert run(sale) == ForcedSaleStatus.FILLED


def test_a_fill_outside_the_band_pauses_the_sale_and_escalates(sale, venue, settings):
    settings.FORCED_SALE_VENUE = {**settings.FORCED_SALE_VENUE, "order_type": "market"}
    venue.set_fill("full", price="60000")  # 14% below the oracle's 70,000
    assert run(sale) == ForcedSaleStatus.PAUSED
    assert sale.pause_reason == PauseReason.PRICE_BAND
    assert re.search(
        r"filled at 60000(\.00)? USD, more than 2\.00% below the oracle price of 70000", sale.status_reason
    )
    assert SaleFill.objects.filter(order__forced_sale=sale).count() == 1  # the fill happened: it is booked
    assert ledger_is_balanced()
    assert Event.objects.filter(type="forced_sale.paused").exists()
    with pytest.raises(InvalidTransition):  # a band pause does not resume by itself
        forced_sale_approve(sale=sale, actor=StaffFactory(role="Risk officer"))


def test_the_kill_switch_pauses_every_sale_and_takes_four_eyes_to_lift(sale, venue):
    officer, colleague = StaffFactory(role="Risk officer"), StaffFactory(role="Risk officer")
    kill_switch_engage(actor=officer, reason="venue outage")
    assert run(sale) == ForcedSaleStatus.PAUSED
    assert sale.pause_reason == PauseReason.KILL_SWITCH
    assert venue.requests("create_order") == []
    request = kill_switch_lift_request(actor=officer, reason="venue back")
    with writes_nothing(), pytest.raises(FourEyesViolation):
        approval_request_approve(request=request, actor=officer)
    approval_request_approve(request=request, actor=colleague)
    request.refresh_from_db()
    assert request.status == ApprovalStatus.APPROVED
    assert run(sale) == ForcedSaleStatus.FILLED


def test_a_policy_may_require_approval_before_a_sale_is_submitted(market, venue):
    from financing.lending.policies import margin_policy_save
    from financing.models import MarginPolicy

    policy = MarginPolicy(name="Approved sales", requires_sale_approval=True)
    margin_policy_save(policy=policy, actor=SYSTEM)
    facility = facility_with_pool(holdings={"BTC": "1"}, policy=policy)
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("BTC", "70000")
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    sale = ForcedSale.objects.get(facility=facility)
    assert run(sale) == ForcedSaleStatus.AWAITING_APPROVAL
    assert venue.requests("create_order") == []
    for role in ("Compliance", "Credit officer", "Operations"):
        staff = StaffFactory(role=role)
        with writes_nothing(), pytest.raises(PermissionRefused, match="Only risk officers"):
            forced_sale_approve(sale=sale, actor=staff)
    forced_sale_approve(sale=sale, actor=StaffFactory(role="Risk officer"))
    assert run(sale) == ForcedSaleStatus.FILLED


def test_only_risk_officers_resume_a_paused_sale(sale, venue, settings):
    settings.FORCED_SALE_MAX_VENUE_ERRORS = 1
    venue.fail("create_order", "http_500", times=1)
    assert run(sale) == ForcedSaleStatus.PAUSED
    credit_officer = StaffFactory(role="Credit officer")
    with writes_nothing(), pytest.raises(PermissionRefused, match="Only risk officers may resume"):
        forced_sale_resume(sale=sale, actor=credit_officer)
    forced_sale_resume(sale=sale, actor=StaffFactory(role="Risk officer"))
    assert run(sale) == ForcedSaleStatus.FILLED


def test_a_pool_that_is_not_enough_is_sold_whole_and_the_shortfall_escalated(market, venue):
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    venue.set_price("BTC/USD", "20000")
    price("BTC", "20000")  # MV 156,000 against 265,200 of debt
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    sale = ForcedSale.objects.get(facility=facility)
    assert run(sale) == ForcedSaleStatus.FILLED
    assert pool_holdings(facility_pool(facility)) == {}
    assert sale.shortfall == facility_debt(facility).total == Decimal("265200.00") - Decimal("156000.00")
    assert Event.objects.filter(type="forced_sale.shortfall").exists()
    assert ledger_is_balanced()


def test_securities_are_sold_through_the_brokers_order_system(market, venue):
    from tests.webhook_receiver import webhook_receiver

    facility = facility_with_pool(
        holdings={"0700.HK": "1000"}
    )  # LV 280,000 (no other asset: 50% cap → 140,000)
    drawdown_create(facility=facility, amount="119000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    with webhook_receiver() as receiver:
        WebhookEndpoint.objects.create(
            name="OMS", url=receiver.url, secret="s", event_types=["forced_sale.order"]
        )
        price("0700.HK", "280")
        monitoring_cycle_run(symbols=["0700.HK"], trigger="test")
        sale = ForcedSale.objects.get(facility=facility)
        assert run(sale) == ForcedSaleStatus.SUBMITTED
    (order,) = sale.orders.all()
    assert order.route == SaleRoute.BROKER
    assert order.quantity % 100 == 0
    assert Event.objects.filter(
        type="forced_sale.order", payload__client_order_id=order.client_order_id
    ).exists()
    operations = StaffFactory(role="Operations")
    with writes_nothing(), pytest.raises(InvalidInput, match=r"a fill of .* is more than that"):
        sale_fill_record(
            order=order, fill_key="X1", quantity=order.quantity + 100, price="280", actor=operations
        )
    sale_fill_record(order=order, fill_key="X1", quantity="100", price="280", fee="12.50", actor=operations)
    with writes_nothing():
        sale_fill_record(
            order=order, fill_key="X1", quantity="100", price="280", fee="12.50", actor=operations
        )
    rest = order.quantity - 100
    if rest:
        sale_fill_record(order=order, fill_key="X2", quantity=rest, price="281", actor=operations)
    assert run(sale) == ForcedSaleStatus.FILLED
    order.refresh_from_db()
    assert order.status == SaleOrderStatus.FILLED
    assert facility_valuation(facility).margin_ratio <= Decimal("0.85")
    assert ledger_is_balanced()


def test_a_stalled_limit_order_is_repriced_under_a_new_client_id(sale, venue, settings):
    venue.set_fill("never")
    forced_sale_step(sale_id=sale.pk)  # placed; nothing fills
    settings.FORCED_SALE_REPRICE_SECONDS = 0
    forced_sale_step(sale_id=sale.pk)  # stalled: cancelled at the venue, the rest planned again
    settings.FORCED_SALE_REPRICE_SECONDS = 3600
    venue.set_fill("full")
    assert run(sale) == ForcedSaleStatus.FILLED
    orders = list(sale.orders.order_by("pk").values_list("client_order_id", "status"))
    assert orders == [
        (f"FS{sale.pk}-1", SaleOrderStatus.CANCELLED),
        (f"FS{sale.pk}-2", SaleOrderStatus.FILLED),
    ]
    assert [r.form.get("client_order_id") for r in venue.requests("create_order")] == [
        f"FS{sale.pk}-1",
        f"FS{sale.pk}-2",
    ]


def test_collateral_deposited_before_the_sale_starts_reduces_what_is_sold(sale, venue, market):
    collateral_deposit(
        pool=facility_pool(sale.facility), asset=market["HKD"], quantity="100000.00", actor=SYSTEM
    )
    # The HKD 100,000 in the pool repays first (D 165,200 against LV 218,400: 75.6%): nothing is sold.
    assert run(sale) == ForcedSaleStatus.CANCELLED
    assert "at or below the target of 85.00%" in sale.status_reason
    assert not sale.orders.exists()
    assert facility_debt(sale.facility).total == Decimal("165200.00")


def test_a_risk_officer_pauses_a_running_sale_and_resumes_it(sale, venue):
    venue.set_fill("never")
    forced_sale_step(sale_id=sale.pk)  # placed; nothing fills
    for role in ("Compliance", "Credit officer", "Operations"):
        staff = StaffFactory(role=role)
        with writes_nothing(), pytest.raises(PermissionRefused, match="Only risk officers may pause"):
            forced_sale_pause(sale=sale, actor=staff, reason="look")
    risk = StaffFactory(role="Risk officer")
    with writes_nothing(), pytest.raises(InvalidInput, match="Say why"):
        forced_sale_pause(sale=sale, actor=risk, reason=" ")
    forced_sale_pause(sale=sale, actor=risk, reason="The book looks thin")
    sale.refresh_from_db()
    assert (sale.status, sale.pause_reason) == (ForcedSaleStatus.PAUSED, PauseReason.STAFF)
    assert list(sale.orders.values_list("status", flat=True)) == [SaleOrderStatus.CANCELLED]
    assert len(venue.requests("cancel_order")) == 1
    assert run(sale) == ForcedSaleStatus.PAUSED  # a step leaves it for a person
    with pytest.raises(InvalidTransition, match="only a submitted or partly filled"):
        forced_sale_pause(sale=sale, actor=risk, reason="again")
    venue.set_fill("full")
    forced_sale_resume(sale=sale, actor=risk)
    assert run(sale) == ForcedSaleStatus.FILLED
    assert ledger_is_balanced()
