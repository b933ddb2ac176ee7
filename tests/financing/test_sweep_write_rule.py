"""What a sweep writes under 10-second price refreshes: a margin state and a ratio snapshot when the figures
carry information (a status or debt change, a target crossing, a move beyond the step, or the interval's
rewrite), nothing for a drift within the step; and the ladder acts on every crossing exactly as when every
change was written."""

import datetime
import types
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings

from accounts.audit import SYSTEM
from financing.calculations import MarginFigures, figures_worth_writing
from financing.lending.services import drawdown_create
from financing.models import ForcedSale, MarginCall, MarginState, RatioSnapshot
from financing.monitoring.cycle import monitoring_cycle_run
from notifications.models import Event
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("both_sweeps")]


@pytest.fixture(params=["set-based on PostgreSQL", "rows in Python"])
def both_sweeps(request, monkeypatch):
    """Run the test with the sweep that runs on PostgreSQL (``sweep.sql``) and with the one that runs elsewhere
    (``_sweep_generic``): they apply the same write rule."""
    if request.param == "rows in Python":
        monkeypatch.setattr(
            "financing.monitoring.sweep.connection",
            types.SimpleNamespace(vendor="other", cursor=connection.cursor),
        )
    return request.param


def btc_at(value: str):
    price("BTC", value)
    return monitoring_cycle_run(symbols=["BTC"], trigger="test")


def state_of(facility) -> MarginState:
    return MarginState.objects.get(facility=facility)


@pytest.fixture
def facility(market):
    """1 BTC: LV 312,000 at US$100,000; drawn 250,000 (80.13%). Warning at 90%, call above 100%, target 85%."""
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    return facility


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_drift_within_the_step_writes_nothing_until_it_adds_up_past_the_step(facility):
    written = state_of(facility)
    snapshots = RatioSnapshot.objects.count()
    result = btc_at("99900")  # 0.80208414: 0.08 points from the 0.80128205 written
    assert (result.states_changed, result.snapshots_written) == (0, 0)
    assert state_of(facility).margin_ratio == written.margin_ratio == Decimal("0.80128205")
    assert btc_at("99800").snapshots_written == 0  # 0.80288783: 0.16 points
    result = btc_at("99650")  # 0.80409639: 0.28 points since the snapshot, past the 0.25 step
    assert (result.states_changed, result.snapshots_written) == (1, 1)
    assert state_of(facility).margin_ratio == Decimal("0.80409639")
    assert RatioSnapshot.objects.count() == snapshots + 1
    assert RatioSnapshot.objects.first().margin_ratio == Decimal("0.80409639")


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0, SWEEP_WRITE_INTERVAL_SECONDS=900)
def test_a_small_change_is_written_once_the_interval_has_passed(facility):
    assert btc_at("99900").snapshots_written == 0
    fifteen_minutes_ago = state_of(facility).valued_at - datetime.timedelta(seconds=900)
    MarginState.objects.filter(facility=facility).update(valued_at=fifteen_minutes_ago)
    result = btc_at("99890")
    assert (result.states_changed, result.snapshots_written) == (1, 1)
    assert state_of(facility).margin_ratio == Decimal("0.80216443")
    assert btc_at("99880").snapshots_written == 0  # written just now: the interval starts again


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_status_change_is_written_at_once_however_small_the_move(facility):
    btc_at("89100")  # 0.89930645: ok
    assert state_of(facility).status == "ok"
    result = btc_at("89020")  # 0.90011464: a tenth of a point, across the warning threshold
    assert result.snapshots_written == 1
    assert (state_of(facility).status, state_of(facility).margin_ratio) == ("warning", Decimal("0.90011464"))
    assert Event.objects.filter(type="margin.warning").count() == 1


@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_a_target_crossing_is_written_at_once_however_small_the_move(facility):
    btc_at("94300")  # 0.84971586: below the 85% target
    before = btc_at("94270")  # 0.84998626, still below
    assert before.snapshots_written == 0
    result = btc_at("94250")  # 0.85016663: across the target, status still ok
    assert result.snapshots_written == 1
    assert state_of(facility).margin_ratio == Decimal("0.85016663")


def test_the_rule_in_python_writes_what_it_says():
    def figures(ratio, status="ok", debt="100.00", margin_value="125.00"):
        return MarginFigures(Decimal("200.00"), Decimal(margin_value), Decimal(debt), ratio, status)

    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    rule = {"target": Decimal("0.85"), "step": Decimal("0.0025"), "written_at": now, "stale_before": now}
    recent = {**rule, "stale_before": now - datetime.timedelta(seconds=1)}
    base = figures(Decimal("0.80000000"))
    assert not figures_worth_writing(base, base, **rule)  # nothing changed, however old
    assert not figures_worth_writing(base, figures(Decimal("0.80250000"), margin_value="124.61"), **recent)
    assert figures_worth_writing(base, figures(Decimal("0.80250001"), margin_value="124.60"), **recent)
    assert figures_worth_writing(base, figures(Decimal("0.80000001"), margin_value="124.99"), **rule)  # stale
    assert figures_worth_writing(base, figures(Decimal("0.80000000"), "warning"), **recent)
    assert figures_worth_writing(base, figures(Decimal("0.80000000"), debt="100.01"), **recent)
    assert figures_worth_writing(base, figures(None, margin_value="0.00"), **recent)
    near_target = figures(Decimal("0.84960000"), margin_value="117.70")
    assert figures_worth_writing(near_target, figures(Decimal("0.85034014"), margin_value="117.60"), **recent)


# BTC in US dollars, as production sees it: a few basis points at a time, now and then a jump; each tiny move
# that crosses a threshold comes after tiny moves that the write rule leaves unwritten.
MOVES = [
    "97000", "94600", "94560", "94520", "94480", "94430",  # A (265,200 on 1 BTC) crosses 90%: warning
    "89100", "89060", "89020",  # B (250,000 on 1 BTC) crosses 90%
    "85100", "85050", "85010", "84990",  # A crosses 100%: margin call
    "83400", "83360", "83330",  # C (520,000 on 2 BTC) crosses 100%
    "95000", "99900", "99960", "99990", "100005",  # back up: C's call cured, then A's at its 85% target
    "90000", "80000", "80100", "80140",  # calls for all three; B back within 100%, its call open
    "71000", "70900", "70850", "70820",  # A crosses 120%: forced sale
]  # fmt: skip


def actions() -> list[tuple]:
    """What the ladder did, in order, without the keys a second run numbers anew."""
    # Sorted: the events of one batch share a moment; which came first is taken after every move.
    events = sorted(Event.objects.values_list("type", "client_id"))
    calls = list(
        MarginCall.objects.order_by("pk").values_list(
            "facility_id", "status", "ratio_at_issue", "debt_at_issue", "margin_value_at_issue",
            "repayment_due", "top_up_due",
        )
    )  # fmt: skip
    sales = list(ForcedSale.objects.order_by("pk").values_list("facility_id", "status", "trigger"))
    return [events, calls, sales]


def run_moves(**write_rule) -> tuple[list, int]:
    """Run the moves under ``write_rule`` and roll them back; return the ladder's actions after each move and
    the snapshots written."""
    seen, snapshots = [], 0

    class RolledBack(Exception):
        pass

    try:
        with override_settings(**write_rule), transaction.atomic():
            for value in MOVES:
                snapshots += btc_at(value).snapshots_written
                seen.append(actions())
            raise RolledBack
    except RolledBack:
        pass
    return seen, snapshots


@pytest.mark.usefixtures("both_ladders")
@override_settings(SWEEP_POSTING_LOOKBACK_SECONDS=0)
def test_the_ladder_acts_on_every_crossing_as_when_every_change_was_written(market):
    facilities = {
        "A": facility_with_pool(holdings={"BTC": "1"}),
        "B": facility_with_pool(holdings={"BTC": "1"}),
        "C": facility_with_pool(holdings={"BTC": "2"}),
    }
    for name, amount in (("A", "265200.00"), ("B", "250000.00"), ("C", "520000.00")):
        drawdown_create(facility=facilities[name], amount=amount, actor=SYSTEM)
    monitoring_cycle_run(trigger="test")

    every_change, all_snapshots = run_moves(SWEEP_RATIO_STEP=Decimal(0), SWEEP_WRITE_INTERVAL_SECONDS=0)
    by_rule, rule_snapshots = run_moves(SWEEP_RATIO_STEP=Decimal("0.0025"), SWEEP_WRITE_INTERVAL_SECONDS=900)

    assert by_rule == every_change  # after every move: the same events, calls and sales, figures to the cent
    assert rule_snapshots < all_snapshots / 2  # the drift within the step is not written
    events, calls, sales = every_change[-1]
    kinds = [kind for kind, _client in events]
    a, b, c = (facilities[name] for name in "ABC")
    assert kinds.count("margin.warning") >= 2
    assert kinds.count("margin_call.cured") == 2  # C, then A at the target on a move of 0.013 points
    assert [(call[0], call[1]) for call in calls] == [
        (a.pk, "cured"), (c.pk, "cured"), (a.pk, "forced_sale"), (b.pk, "issued"), (c.pk, "issued"),
    ]  # fmt: skip
    assert [(sale[0], sale[2]) for sale in sales] == [(a.pk, "threshold")]
    # Each crossing acted on at the move that made it, in both runs.
    first_call = next(i for i, seen in enumerate(every_change) if seen[1])
    assert MOVES[first_call] == "84990"
    a_cured = next(i for i, seen in enumerate(every_change) if (a.pk, "cured") in [c[:2] for c in seen[1]])
    assert MOVES[a_cured] == "100005"  # from 0.85008501 to 0.84995750: a target crossing within the step
