"""What is kept: ratio snapshots partitioned by day on PostgreSQL, rolled up by hour and by day before they are
dropped, the history read from the finest source that still covers each moment, price quotes kept except those
a forced sale was planned on, and a dry run that writes nothing."""

import datetime
import io
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.audit import SYSTEM
from collateral.models import CurrentPrice, PriceQuote, QuoteStatus
from financing.history import ratio_history
from financing.lending.services import drawdown_create
from financing.models import ForcedSale, RatioRollup, RatioSnapshot
from financing.monitoring.cycle import monitoring_cycle_run
from financing.retention import retention_run
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db

TODAY = timezone.now().astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY = TODAY - datetime.timedelta(days=3)  # a day before the partitions made at migration: in the "upto" one


def at(hours: float, day: datetime.datetime = DAY) -> datetime.datetime:
    return day + datetime.timedelta(hours=hours)


def snap(facility, moment, ratio):
    RatioSnapshot.objects.create(
        facility=facility, taken_at=moment, market_value=Decimal("100"), margin_value=Decimal("50"),
        debt=Decimal("40"), margin_ratio=None if ratio is None else Decimal(ratio), status="ok",
    )  # fmt: skip


def partitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'financing_ratiosnapshot'::regclass ORDER BY c.relname"
        )
        return [name for (name,) in cursor.fetchall()]


@pytest.fixture
def history(market):
    """Day 1: 10:05 50%, 10:40 55% (hour 10 closes at 55%); 11:10 60%, 11:20 infinite, 11:50 62%. Day 2: 09:00 70%."""
    facility = facility_with_pool()
    for moment, ratio in [(at(10 + 5 / 60), "0.5"), (at(10 + 40 / 60), "0.55"), (at(11 + 10 / 60), "0.6"),
                          (at(11 + 20 / 60), None), (at(11 + 50 / 60), "0.62"), (at(33), "0.7")]:  # fmt: skip
        snap(facility, moment, ratio)
    return facility


def test_the_snapshots_are_partitioned_by_day_and_the_sweep_writes_into_today_s(market):
    names = partitions()
    days = [(TODAY + datetime.timedelta(days=n)).strftime("%Y%m%d") for n in range(8)]
    assert {f"financing_ratiosnapshot_p{day}" for day in days} <= set(names)
    assert "financing_ratiosnapshot_default" in names
    assert any(name.startswith("financing_ratiosnapshot_upto_") for name in names)
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="100000.00", actor=SYSTEM)
    assert monitoring_cycle_run(trigger="test").snapshots_written == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM financing_ratiosnapshot WHERE facility_id = %s",
            [facility.pk],
        )
        (where,) = cursor.fetchone()
    day = timezone.now().astimezone(datetime.UTC).strftime("%Y%m%d")
    assert where == f"financing_ratiosnapshot_p{day}"


def test_old_snapshots_are_rolled_up_by_hour_then_dropped_and_the_history_reads_the_rollups(history):
    before = ratio_history(history.pk, at(0), at(48))
    assert [p.margin_ratio for p in before] == [Decimal("0.5"), Decimal("0.55"), Decimal("0.6"), None,
                                                Decimal("0.62"), Decimal("0.7")]  # fmt: skip
    steps = retention_run(now=TODAY + datetime.timedelta(days=20))
    dropped = [s.what for s in steps if s.action == "drop partition"]
    assert any(name.startswith("financing_ratiosnapshot_upto_") for name in dropped)
    assert not RatioSnapshot.objects.filter(facility=history).exists()
    hours = {r.starts_at: r for r in RatioRollup.objects.filter(facility=history, period="hour")}
    assert set(hours) == {at(10), at(11), at(33)}
    assert (hours[at(10)].taken_at, hours[at(10)].margin_ratio) == (at(10 + 40 / 60), Decimal("0.55"))
    assert (hours[at(10)].lowest_ratio, hours[at(10)].highest_ratio, hours[at(10)].snapshots) == (
        Decimal("0.5"), Decimal("0.55"), 2,
    )  # fmt: skip
    assert (hours[at(11)].lowest_ratio, hours[at(11)].highest_ratio, hours[at(11)].snapshots) == (
        Decimal("0.6"), None, 3,  # an infinite ratio in the hour: no highest
    )  # fmt: skip
    after = ratio_history(history.pk, at(0), at(48))
    assert [(p.at, p.margin_ratio) for p in after] == [
        (at(10 + 40 / 60), Decimal("0.55")), (at(11 + 50 / 60), Decimal("0.62")), (at(33), Decimal("0.7")),
    ]  # fmt: skip
    # What stood at the end of each hour is what the raw history showed then.
    assert ratio_history(history.pk, at(11 + 55 / 60), at(20))[0].margin_ratio == Decimal("0.62")


def test_hourly_rollups_are_rolled_up_by_day_then_dropped(history):
    retention_run(now=TODAY + datetime.timedelta(days=20))
    retention_run(now=TODAY + datetime.timedelta(days=120))
    assert not RatioRollup.objects.filter(facility=history, period="hour").exists()
    days = {r.starts_at: r for r in RatioRollup.objects.filter(facility=history, period="day")}
    assert set(days) == {DAY, DAY + datetime.timedelta(days=1)}
    first = days[DAY]
    assert (first.taken_at, first.margin_ratio, first.lowest_ratio, first.highest_ratio, first.snapshots) == (
        at(11 + 50 / 60), Decimal("0.62"), Decimal("0.5"), None, 5,
    )  # fmt: skip
    assert [(p.at, p.margin_ratio) for p in ratio_history(history.pk, at(-24), at(72))] == [
        (at(11 + 50 / 60), Decimal("0.62")), (at(33), Decimal("0.7")),
    ]  # fmt: skip


def test_a_dry_run_writes_nothing_and_says_what_a_run_would_do(history):
    with writes_nothing():
        steps = retention_run(dry_run=True, now=TODAY + datetime.timedelta(days=20))
    assert RatioSnapshot.objects.filter(facility=history).count() == 6
    assert any(name.startswith("financing_ratiosnapshot_upto_") for name in partitions())
    hours = next(s for s in steps if s.action == "roll up" and s.what.startswith("hours"))
    assert hours.rows == 3  # three facility-hours
    assert any(
        s.action == "drop partition" and s.what.startswith("financing_ratiosnapshot_upto_") for s in steps
    )
    out = io.StringIO()
    call_command("retention", "--dry-run", stdout=out)
    assert "Would " in out.getvalue()
    assert RatioSnapshot.objects.filter(facility=history).count() == 6


def quote(price_row, days_ago: int) -> PriceQuote:
    moment = timezone.now() - datetime.timedelta(days=days_ago)
    return PriceQuote.objects.create(
        refresh_id=uuid.uuid4(), venue="fake", asset_id="BTC", market="BTC/USD", price=price_row.price,
        currency="USD", quoted_at=moment, received_at=moment, status=QuoteStatus.ACCEPTED, chosen_price=price_row,
    )  # fmt: skip


def test_price_quotes_are_kept_for_the_period_and_those_a_forced_sale_was_planned_on_for_good(
    market, settings
):
    settings.RETENTION_PRICE_QUOTE_DAYS = 30
    facility = facility_with_pool(holdings={"BTC": "1"})
    drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
    price("BTC", "70000")  # 121.4%: a forced sale is requested
    monitoring_cycle_run(symbols=["BTC"], trigger="test")
    planned_on = CurrentPrice.objects.get(asset_id="BTC").price
    ForcedSale.objects.get().planned_on_prices.add(planned_on)
    price("BTC", "71000")
    other = CurrentPrice.objects.get(asset_id="BTC").price
    old_planned, old_other, recent = quote(planned_on, 40), quote(other, 40), quote(other, 5)
    retention_run()
    kept = set(PriceQuote.objects.values_list("pk", flat=True))
    assert old_planned.pk in kept
    assert recent.pk in kept
    assert old_other.pk not in kept
