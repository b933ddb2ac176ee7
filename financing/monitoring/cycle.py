"""One monitoring cycle: the sweep revalues the book, then the margin-call ladder acts on every facility whose
margin status moved."""

from __future__ import annotations

import time

from financing.monitoring.ladder import ladder_run
from financing.monitoring.sweep import SweepResult, sweep_finish, sweep_value


def monitoring_cycle_run(
    *, symbols: list[str] | None = None, clients: list[int] | None = None, trigger: str = "full"
) -> SweepResult:
    """Sweep, then ladder. The run is finished only after the ladder: the ladder counts receipts of free
    holdings from the start of the sweep before this one, which it finds as the last finished run."""
    result = sweep_value(symbols=symbols, clients=clients, trigger=trigger)
    started = time.perf_counter()
    actions = ladder_run()
    return sweep_finish(result, ladder_actions=actions, ladder_ms=int((time.perf_counter() - started) * 1000))
