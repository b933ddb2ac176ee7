"""A crypto stress values most pools from the fixed parts the last sweep stored: what changed since that sweep
without a posting (a term changed by staff, a new FX rate or security price, a policy's thresholds) must
give the figures and plans the pure calculations give on the live book, to the cent."""

from decimal import Decimal as D

import pytest
from django.db.models import F

from accounts.audit import SYSTEM
from collateral.models import Asset
from collateral.services import asset_update
from financing.models import MarginPolicy
from financing.monitoring import sweep as sweep_module
from financing.monitoring.sweep import sweep_run
from oversight.models import StressResult
from oversight.stress import stress_run
from tests.collateral.factories import fx, price
from tests.oversight.factories import random_book, scenario

pytestmark = pytest.mark.django_db


def rows(run):
    return {
        r.facility_id: (r.market_value, r.margin_value, r.debt, r.ratio_after, r.status_after, r.sale_plan)
        for r in StressResult.objects.filter(run=run)
    }


def _change(market, change: str) -> None:
    if change == "crypto_haircut":  # as an approved haircut change writes it
        Asset.objects.filter(pk=market["BTC"].pk).update(haircut=D("0.75"))
    elif change == "crypto_limit":
        asset_update(asset=market["BTC"], actor=SYSTEM, concentration_limit="0.30")
    elif change == "crypto_ineligible":
        asset_update(asset=market["ETH"], actor=SYSTEM, eligible=False)
    elif change == "security_haircut":
        Asset.objects.filter(pk=market["0700.HK"].pk).update(haircut=D("0.55"))
    elif change == "fx":
        fx("USD", "7.75")
    elif change == "security_price":
        price("0700.HK", "350")
    elif change == "policy_thresholds":  # as an approved threshold change writes them
        MarginPolicy.objects.filter(is_default=True).update(
            margin_call=F("margin_call") - D("0.05"), forced_sale=F("forced_sale") - D("0.10")
        )


@pytest.mark.parametrize(
    "change",
    ["crypto_haircut", "crypto_limit", "crypto_ineligible", "security_haircut", "fx", "security_price",
     "policy_thresholds"],
)  # fmt: skip
def test_what_changed_since_the_last_sweep_without_a_posting_is_valued_as_live(
    market, monkeypatch, settings, change
):
    settings.SWEEP_POSTING_LOOKBACK_SECONDS = (
        0  # the book's postings are older than the sweep: its parts hold
    )
    random_book(market, facilities=25, seed=5)
    sweep_run(trigger="test")
    _change(market, change)
    bases = []
    spied = sweep_module._on_the_live_basis
    monkeypatch.setattr(
        sweep_module, "_on_the_live_basis", lambda units: bases.append(spied(units)) or bases[-1]
    )
    crypto = scenario({"crypto": "-0.35"}, sale_cost="0.015")
    sql_run = stress_run(scenario=crypto, actor=SYSTEM)
    assert bases[-1] is not None  # a crypto shock: the fixed parts are used where their basis holds
    monkeypatch.setattr("oversight.stress.valued_in_sql", lambda: False)
    pure_run = stress_run(scenario=crypto, actor=SYSTEM)
    assert len(rows(sql_run)) == 25
    assert rows(sql_run) == rows(pure_run)
    assert (sql_run.by_status_after, sql_run.sale_proceeds, sql_run.shortfall) == (
        pure_run.by_status_after, pure_run.sale_proceeds, pure_run.shortfall)  # fmt: skip
