"""One mistyped FX rate or price pushed by the broker's systems (API or file) must never liquidate a client:
one too far from the value in use, or outside the USD/HKD peg band, is recorded and held for a second person,
and neither the sweep nor a sale uses it."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.audit import SYSTEM
from collateral.enums import PriceStatus
from collateral.models import FxRate, Price
from collateral.selectors import current_prices, fx_to_hkd
from financing.lending.services import drawdown_create
from financing.models import ForcedSale, MarginCall, MarginState
from financing.monitoring.cycle import monitoring_cycle_run
from tests.accounts.factories import StaffFactory
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def facility(market):
    """1 BTC drawn to 85% at US$100,000 and USD/HKD 7.8: any real fall of BTC or of the rate is a call."""
    facility = facility_with_pool(holdings={"BTC": "1", "0700.HK": "1000"})
    drawdown_create(facility=facility, amount="425200.00", actor=SYSTEM)  # 265,200 + 0.4 × 400,000
    monitoring_cycle_run(trigger="test")
    assert MarginState.objects.get(facility=facility).status == "ok"
    return facility


def push(api, symbol: str, value: str):
    return api.post(
        "/api/v1/prices/",
        {"source": "market-data", "prices": [{"symbol": symbol, "price": value}]},
        format="json",
    )


def nothing_moved(facility) -> None:
    state = MarginState.objects.get(facility=facility)
    before = (state.status, state.margin_value)
    monitoring_cycle_run(trigger="test")  # a full sweep, and the ladder
    monitoring_cycle_run(symbols=["BTC", "0700.HK"], trigger="prices")
    state.refresh_from_db()
    assert (state.status, state.margin_value) == before
    assert not ForcedSale.objects.exists()
    assert not MarginCall.objects.exists()


def test_a_usd_hkd_rate_of_a_ten_billionth_moves_no_margin_status_and_starts_no_sale(facility, key_client):
    response = push(key_client("prices"), "USD/HKD", "0.0000000001")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["prices_recorded"], body["fx_rates_recorded"]) == (0, 1)
    (held,) = body["held"]
    assert (held["line"], held["symbol"], held["price"]) == (1, "USD/HKD", "0.0000000001")
    assert held["reason"] == (
        "0.0000000001 is outside the USD/HKD peg band of 7.75–7.85; "
        "0.0000000001 is 100.00% below the 7.8 USD/HKD in use; the band is 5.00%"
    )
    rate = FxRate.objects.get(rate=Decimal("0.0000000001"))
    assert (rate.status, rate.recorded_by) == (PriceStatus.UNCONFIRMED, None)
    assert fx_to_hkd()["USD"] == Decimal("7.8")
    assert key_client("read").get("/api/v1/fx-rates/").json()["results"][0]["rate"] == "7.8"
    nothing_moved(facility)


def test_a_tencent_price_of_a_tenth_of_a_cent_is_held(facility, key_client):
    response = push(key_client("prices"), "0700.HK", "0.001")
    assert response.status_code == 201
    (held,) = response.json()["held"]
    assert held["reason"] == "0.001 is 100.00% below the 400 HKD in use; the band is 25.00%"
    assert Price.objects.get(asset_id="0700.HK", price=Decimal("0.001")).status == PriceStatus.UNCONFIRMED
    assert current_prices()["0700.HK"].price == Decimal("400")
    nothing_moved(facility)


def test_a_rate_from_a_price_file_is_held_too(facility, client):
    login_as(client, StaffFactory(role="Operations"))
    data = b"symbol,price,currency,observed_at,source\nUSD/HKD,0.0000000001,,,\n"
    response = client.post(
        reverse("admin:collateral_price_upload"),
        {"file": SimpleUploadedFile("fx.csv", data, content_type="text/csv")},
        follow=True,
    )
    assert "Line 2 (USD/HKD 0.0000000001) is held for confirmation" in response.content.decode()
    assert fx_to_hkd()["USD"] == Decimal("7.8")
    nothing_moved(facility)


def test_prices_within_the_band_are_used_at_once(facility, key_client):
    response = key_client("prices").post(
        "/api/v1/prices/",
        {
            "source": "close",
            "prices": [{"symbol": "0700.HK", "price": "360"}, {"symbol": "USD/HKD", "price": "7.76"}],
        },
        format="json",
    )
    assert response.json() == {"prices_recorded": 1, "fx_rates_recorded": 1, "held": []}
    assert current_prices()["0700.HK"].price == Decimal("360")
    assert fx_to_hkd()["USD"] == Decimal("7.76")
