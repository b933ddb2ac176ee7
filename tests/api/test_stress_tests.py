"""The stress-test resources: run a library scenario or one's own, read the firm's figures and the
per-facility rows (filtered by status after), with scope ``risk`` to run and ``read`` to read."""

import pytest

from accounts.audit import SYSTEM
from financing.lending.services import drawdown_create
from oversight.models import StressRun, StressScenario
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(market):
    # 1 BTC (HK$312,000 of margin value) with debt 250,000, and 1 BTC with debt 100,000.
    stressed = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=stressed, amount="250000.00", actor=SYSTEM)
    calm = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=calm, amount="100000.00", actor=SYSTEM)
    return stressed, calm


def test_run_a_library_scenario_and_read_its_rows(book, key_client):
    stressed, calm = book
    risk = key_client("risk", "read")
    answer = risk.post("/api/v1/stress-tests/", {"scenario": "2020-03-12"}, format="json")
    assert answer.status_code == 201, answer.content
    run = answer.json()
    # BTC −39.6%: HK$471,120 of BTC, margin value 188,448; 250,000 / 188,448 = 132.66%; 100,000 → 53.07%.
    assert run["scenario_key"] == "2020-03-12"
    assert run["by_status_after"] == {"forced_sale": 1, "ok": 1}
    assert run["amount_due"] == "89819.20"  # 250,000 − 0.85 × 188,448
    assert run["lending"] == "350000.00"
    assert run["lending_cap"] == "1000000000.00"
    assert run["sale_cost"] == "0.02"
    rows = risk.get(f"/api/v1/stress-tests/{run['id']}/facilities/?status_after=forced_sale").json()
    assert [r["facility_reference"] for r in rows["results"]] == [stressed.reference]
    [row] = rows["results"]
    assert (row["ratio_after"], row["status_after"], row["repayment_to_cure"]) == (
        "1.32662591",
        "forced_sale",
        "89819.20",
    )
    assert row["sale_plan"][0]["asset"] == "BTC"
    every = risk.get(f"/api/v1/stress-tests/{run['id']}/facilities/").json()
    assert {r["facility"] for r in every["results"]} == {stressed.pk, calm.pk}
    assert risk.get(f"/api/v1/stress-tests/{run['id']}/").json()["id"] == run["id"]
    assert risk.get(f"/api/v1/stress-tests/{run['id']}/facilities/?status_after=bad").status_code == 400


def test_a_scenario_of_ones_own_is_saved_and_run(book, key_client):
    risk = key_client("risk")
    answer = risk.post(
        "/api/v1/stress-tests/",
        {"name": "ETH and the peg", "shocks": {"ETH": "-0.5", "USD/HKD": "0.005"}, "sale_cost": "0.03"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert StressScenario.objects.get(key="eth-and-the-peg").shocks == {"ETH": "-0.5", "USD/HKD": "0.005"}
    assert answer.json()["sale_cost"] == "0.03"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"scenario": "no-such-thing"}, "no stress scenario"),
        ({"name": "x", "shocks": {"DOGE": "-0.5"}}, "DOGE: not an asset"),
        ({"name": "x", "shocks": {"BTC": -0.5}}, "floating-point"),
        ({}, "Give a scenario"),
    ],
)
def test_bad_requests_write_nothing(book, key_client, body, words):
    scenarios = StressScenario.objects.count()
    answer = key_client("risk").post("/api/v1/stress-tests/", body, format="json")
    assert answer.status_code in (400, 404)
    assert words in answer.content.decode()
    assert (StressScenario.objects.count(), StressRun.objects.count()) == (scenarios, 0)


def test_running_needs_the_risk_scope_and_reading_the_read_scope(book, key_client, staff_client):
    assert (
        key_client("read").post("/api/v1/stress-tests/", {"scenario": "crypto-15"}, format="json").status_code
        == 403
    )
    assert key_client("risk").get("/api/v1/stress-tests/").status_code == 403
    assert staff_client("Compliance").get("/api/v1/stress-tests/").status_code == 200
    assert (
        staff_client("Operations")
        .post("/api/v1/stress-tests/", {"scenario": "crypto-15"}, format="json")
        .status_code
        == 403
    )
    assert (
        staff_client("Risk officer")
        .post("/api/v1/stress-tests/", {"scenario": "crypto-15"}, format="json")
        .status_code
        == 201
    )
    assert StressRun.objects.count() == 1
