"""Background work for collateral. A task calls one service and returns a small JSON-safe summary."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from accounts.audit import SYSTEM
from collateral.oracle import MAX_TIMEOUT_MS, crypto_prices_refresh

# The venues are asked at once, so a refresh takes about one venue timeout plus the writes.
REFRESH_SOFT_TIME_LIMIT = MAX_TIMEOUT_MS // 1000 + 10
REFRESH_TIME_LIMIT = REFRESH_SOFT_TIME_LIMIT + 15
REFRESH_RETRY_SECONDS = 5


@shared_task(
    bind=True,
    name="collateral.refresh_crypto_prices",
    serializer="json",
    max_retries=2,
    soft_time_limit=REFRESH_SOFT_TIME_LIMIT,
    time_limit=REFRESH_TIME_LIMIT,
)
def refresh_crypto_prices(self) -> dict[str, Any]:
    """Ask the venues for BTC and ETH and record the median or mark the asset stale. Returns
    ``{"refresh_id", "as_of", "repriced": [symbols], "prices": {symbol: "decimal"}, "stale": {symbol:
    reason}}`` so that a chained revaluation can look only at the pools holding ``repriced`` symbols.

    Safe to run twice: each run is its own refresh with its own id. A venue failing is not an error
    here (the service leaves it out). Only a lost database connection is retried, twice, soon: a price
    refresh that waits longer is worth less than the next scheduled one. A configuration mistake is
    raised at once and not retried."""
    try:
        return crypto_prices_refresh(actor=SYSTEM).summary()
    except (OperationalError, InterfaceError) as error:
        raise self.retry(exc=error, countdown=REFRESH_RETRY_SECONDS) from error
