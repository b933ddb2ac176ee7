"""Periodic and background work for lending. Each task takes ids or plain values, calls one service and
is safe to run twice (the services compare before they write)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from accounts.audit import SYSTEM
from collateral.oracle import crypto_prices_refresh
from core.calendar import is_business_day
from financing.lending.interest import interest_accrue_all
from financing.liquidation import forced_sales
from financing.monitoring.cycle import monitoring_cycle_run
from financing.monitoring.ladder import ladder_run, margin_calls_escalate_due
from financing.monitoring.watchdog import sweep_overdue_check
from financing.retention import retention_run


def _summary(result) -> dict:
    return {
        "facilities_valued": result.facilities_valued,
        "states_changed": result.states_changed,
        "snapshots_written": result.snapshots_written,
        "ladder_actions": result.ladder_actions,
        "duration_ms": result.run.duration_ms,
    }


@shared_task(name="financing.margin_sweep", soft_time_limit=120, time_limit=180)
def margin_sweep(symbols: list[str] | None = None, trigger: str = "scheduled") -> dict:
    """Revalue the holders of ``symbols`` (everybody when None) and run the margin-call ladder."""
    return _summary(monitoring_cycle_run(symbols=symbols, trigger=trigger))


@shared_task(name="financing.monitor_prices", soft_time_limit=90, time_limit=120)
def monitor_prices() -> dict:
    """The monitoring loop's beat: refresh the crypto prices from the venues, then revalue the holders of
    every asset that got a new price (and anyone posted to since the last sweep), then run the ladder."""
    refresh = crypto_prices_refresh(actor=SYSTEM)
    result = monitoring_cycle_run(symbols=list(refresh.repriced), trigger="prices")
    return {**_summary(result), "repriced": list(refresh.repriced), "stale": dict(refresh.stale)}


@shared_task(name="financing.sweep_watchdog")
def sweep_watchdog() -> bool:
    """Alert staff once when the full sweep is overdue (and once when it runs again); whether it is."""
    return sweep_overdue_check().overdue


@shared_task(name="financing.revalue_clients")
def revalue_clients(client_ids: list[int]) -> dict:
    """Revalue some clients at once (after a drawdown, a repayment, a top-up)."""
    return _summary(monitoring_cycle_run(clients=client_ids, trigger="movement"))


@shared_task(name="financing.margin_ladder")
def margin_ladder() -> int:
    return ladder_run()


@shared_task(name="financing.margin_call_deadlines")
def margin_call_deadlines() -> int:
    """Escalate every margin call whose deadline has passed to a forced sale."""
    return margin_calls_escalate_due()


@shared_task(name="financing.interest_accrual")
def interest_accrual() -> int:
    """Accrue interest for today when it is a Hong Kong business day (covering the days since the last)."""
    today = timezone.localdate()
    if not is_business_day(today):
        return 0
    return interest_accrue_all(accrual_date=today, actor=SYSTEM)


@shared_task(name="financing.forced_sale_step", acks_late=True, soft_time_limit=60, time_limit=90)
def forced_sale_step(sale_id: int) -> str:
    """Take one forced sale one step further (safe to run twice, or after a worker died mid-step)."""
    return forced_sales.forced_sale_step(sale_id=sale_id)


@shared_task(name="financing.forced_sales_start")
def forced_sales_start(sale_ids: list[int]) -> int:
    """Queue a step for each of many newly requested sales: the ladder sends one message for a whole batch,
    the workers take the steps in parallel (a lost message only delays them: ``forced_sales_step_all``)."""
    for sale_id in sale_ids:
        forced_sale_step.delay(sale_id)
    return len(sale_ids)


@shared_task(name="financing.forced_sales_step_all", soft_time_limit=240, time_limit=300)
def forced_sales_step_all() -> dict:
    """The safety net and the follow-up: a step for every open forced sale."""
    return forced_sales.forced_sales_step_all()


@shared_task(name="financing.retention", soft_time_limit=1800, time_limit=2400)
def retention() -> list[str]:
    """Roll the ratio snapshots up and drop what is past its retention (``financing.retention``); what it did."""
    return [str(step) for step in retention_run()]
