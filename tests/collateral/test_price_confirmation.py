"""Sanity checks on pushed prices and FX rates: a band around the value in use (per asset, configurable), the
USD/HKD peg band, and a second person to confirm or reject what they hold."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from accounts.audit import SYSTEM
from accounts.exceptions import FourEyesViolation
from accounts.models import AuditEvent
from collateral import services
from collateral.enums import PriceStatus
from collateral.selectors import current_prices, fx_to_hkd, price_doubts
from core.exceptions import InvalidTransition, PermissionRefused
from tests.accounts.factories import StaffFactory
from tests.collateral.factories import asset
from tests.collateral.test_price_health import HEALTH, table
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops():
    return StaffFactory(role="Operations")


@pytest.fixture
def risk():
    return StaffFactory(role="Risk officer")


def push(symbol: str, value: str, actor=SYSTEM):
    return services.price_record(asset=asset(symbol), price=value, source="feed", actor=actor)


def push_fx(rate: str, currency: str = "USD", quote: str = "HKD", actor=SYSTEM):
    return services.fx_rate_record(currency=currency, quote=quote, rate=rate, source="feed", actor=actor)


# --- what is held ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "held"), [("500", False), ("300", False), ("500.01", True), ("299.99", True)]
)
def test_a_security_price_is_held_beyond_the_default_band_of_25_percent(market, value, held):
    record = push("0700.HK", value)
    assert record.status == (PriceStatus.UNCONFIRMED if held else PriceStatus.ACCEPTED)
    assert current_prices()["0700.HK"].price == (Decimal("400") if held else Decimal(value))


def test_the_band_is_a_setting_and_each_asset_may_have_its_own(market, settings):
    settings.PUSHED_PRICE_BAND = Decimal("0.10")
    assert push("0005.HK", "111").status == PriceStatus.UNCONFIRMED  # HSBC 100 → 111: 11% > 10%
    services.asset_update(asset=asset("0700.HK"), price_band="0.05", actor=SYSTEM)
    record = push("0700.HK", "430")  # 7.5%: inside the setting's 10%, outside Tencent's own 5%
    assert (record.status, record.held_reason) == (
        PriceStatus.UNCONFIRMED,
        "430 is 7.50% above the 400 HKD in use; the band is 5.00%",
    )


def test_the_first_price_of_an_asset_has_nothing_to_be_compared_with(db):
    assert push("0700.HK", "0.001").status == PriceStatus.ACCEPTED


def test_usd_hkd_outside_its_peg_band_is_held_even_when_close_to_the_rate_in_use(market):
    record = push_fx("7.7")  # 1.3% from 7.8: inside the 5% band, outside 7.75–7.85
    assert (record.status, record.held_reason) == (
        PriceStatus.UNCONFIRMED,
        "7.7 is outside the USD/HKD peg band of 7.75–7.85",
    )
    assert fx_to_hkd()["USD"] == Decimal("7.8")
    assert push_fx("7.85").status == PriceStatus.ACCEPTED
    assert fx_to_hkd()["USD"] == Decimal("7.85")


def test_the_first_usd_hkd_rate_is_held_outside_the_peg_band(db):
    assert push_fx("78").status == PriceStatus.UNCONFIRMED
    assert "USD" not in fx_to_hkd()


def test_a_pair_without_a_peg_is_held_beyond_the_fx_band(market):
    services.fx_rate_record(currency="USDT", quote="USD", rate="1.0", source="feed", actor=SYSTEM)
    assert push_fx("0.96", currency="USDT", quote="USD").status == PriceStatus.ACCEPTED
    record = push_fx("0.90", currency="USDT", quote="USD")
    assert record.held_reason == "0.9 is 6.25% below the 0.96 USDT/USD in use; the band is 5.00%"


def test_a_held_price_is_audited_with_its_reason(market, ops):
    record = push("0700.HK", "0.001", actor=ops)
    assert record.recorded_by == ops
    event = AuditEvent.objects.get(action="price.held")
    assert event.after["held_reason"] == "0.001 is 100.00% below the 400 HKD in use; the band is 25.00%"
    assert event.actor_label == ops.username


# --- the second person ---------------------------------------------------------------------------


def test_a_second_person_confirms_a_held_price_and_it_is_used(market, ops, risk):
    record = push("0700.HK", "150", actor=ops)  # a real crash, typed by operations
    assert price_doubts([asset("0700.HK")]) == {
        "0700.HK": "a price of 150 HKD for 0700.HK awaits confirmation "
        "(150 is 62.50% below the 400 HKD in use; the band is 25.00%)"
    }
    confirmed = services.price_confirm(price=record, actor=risk, note="checked against the exchange")
    assert (confirmed.status, confirmed.decided_by) == (PriceStatus.CONFIRMED, risk)
    assert current_prices()["0700.HK"].price == Decimal("150")
    assert price_doubts([asset("0700.HK")]) == {}
    assert AuditEvent.objects.get(action="price.confirmed").after["note"] == "checked against the exchange"


def test_a_rejected_price_is_never_used_and_cannot_be_confirmed_after(market, risk):
    record = push("0700.HK", "0.001")
    services.price_reject(price=record, actor=risk)
    assert current_prices()["0700.HK"].price == Decimal("400")
    assert price_doubts([asset("0700.HK")]) == {}
    other = StaffFactory(role="Risk officer")
    with writes_nothing(), pytest.raises(InvalidTransition, match="is rejected: only a held one"):
        services.price_confirm(price=record, actor=other)


def test_a_confirmed_rate_is_used(market, risk):
    record = push_fx("7.7")
    services.fx_rate_confirm(rate=record, actor=risk)
    assert fx_to_hkd()["USD"] == Decimal("7.7")
    assert price_doubts([asset("BTC")]) == {}  # a person confirmed it: outside the peg, and no doubt


def test_nobody_confirms_what_they_recorded(market, risk):
    record = push("0700.HK", "150", actor=risk)
    with writes_nothing(), pytest.raises(FourEyesViolation, match="a second member of staff"):
        services.price_confirm(price=record, actor=risk)


def test_the_database_refuses_a_decision_by_who_recorded_it(market, risk):
    record = push("0700.HK", "150", actor=risk)
    record.status, record.decided_by = PriceStatus.CONFIRMED, risk
    record.decided_at = record.recorded_at
    with pytest.raises(IntegrityError), transaction.atomic():
        record.save()


@pytest.mark.parametrize("role", ["Operations", "Credit officer", "Compliance"])
def test_only_risk_officers_confirm(market, role):
    record = push("0700.HK", "150")
    staff = StaffFactory(role=role)
    with writes_nothing(), pytest.raises(PermissionRefused, match="may not confirm or reject"):
        services.price_confirm(price=record, actor=staff)


def test_an_older_held_price_confirmed_late_does_not_replace_a_newer_one(market, risk):
    held = push("0700.HK", "150")
    push("0700.HK", "390")
    services.price_confirm(price=held, actor=risk)
    assert current_prices()["0700.HK"].price == Decimal("390")


# --- shown to operations, decided in the admin ----------------------------------------------------


def test_operations_see_what_is_held_on_the_price_health_page(client, market, ops):
    push("0700.HK", "0.001")
    push_fx("0.0000000001")
    login_as(client, ops)
    body = client.get(reverse(HEALTH)).content.decode()
    held = table(body, "held-prices")
    assert [row[:2] for row in held] == [["0700.HK", "0.001 HKD"], ["USD/HKD", "0.0000000001"]]
    prices = {row[0]: row[-1] for row in table(body, "asset-prices")}
    assert prices["0700.HK"].startswith(
        "fresh; in doubt: a price of 0.001 HKD for 0700.HK awaits confirmation"
    )
    assert "in doubt: a USD/HKD rate of 0.0000000001 awaits confirmation" in prices["BTC"]


def test_a_risk_officer_confirms_in_the_admin(client, market, risk):
    record = push("0700.HK", "150")
    login_as(client, risk)
    response = client.post(
        reverse("admin:collateral_price_changelist"), {"action": "confirm", "_selected_action": [record.pk]}
    )
    assert response.status_code == 302
    assert current_prices()["0700.HK"].price == Decimal("150")


def test_operations_cannot_confirm_in_the_admin(client, market, ops):
    record = push("0700.HK", "150")
    login_as(client, ops)
    action_form = client.get(reverse("admin:collateral_price_changelist")).context["action_form"]
    assert action_form is None or "confirm" not in dict(action_form.fields["action"].choices)
    client.post(
        reverse("admin:collateral_price_changelist"), {"action": "confirm", "_selected_action": [record.pk]}
    )
    record.refresh_from_db()
    assert record.status == PriceStatus.UNCONFIRMED
