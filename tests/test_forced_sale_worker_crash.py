"""A Celery worker process is killed (SIGKILL) in the middle of a forced sale, after its order was placed
at the venue. After a restart the sale completes: one order at the venue, the ledger balanced."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from accounts.audit import SYSTEM
from config.celery import app
from fake_exchange import FAKE_CREDENTIALS
from fake_exchange.testing import running_fake_exchange
from financing.enums import ForcedSaleStatus
from financing.lending.services import drawdown_create
from financing.models import ForcedSale
from financing.monitoring.cycle import monitoring_cycle_run
from financing.selectors import facility_valuation, policy_for
from financing.tasks import forced_sale_step
from ledger.selectors import balances_from_legs, balances_projected
from tests.collateral.factories import price, standard_market
from tests.financing.factories import facility_with_pool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

ROOT = Path(__file__).resolve().parent.parent


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--without-heartbeat",
         "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def stop(worker: subprocess.Popen) -> str:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    output, _ = worker.communicate(timeout=30)
    return output.decode(errors="replace")


def test_a_worker_killed_mid_sale_leaves_no_duplicate_order_and_a_balanced_ledger():
    database = urlsplit(os.environ["DATABASE_URL"])
    test_database_url = urlunsplit(database._replace(path="/" + settings.DATABASES["default"]["NAME"]))
    app.conf.task_always_eager = False
    workers = []
    try:
        with running_fake_exchange("bitstamp") as venue:
            venue.set_price("BTC/USD", "70000")
            venue.set_fill("partial", fraction="0.25")
            venue.fail("fetch_order", "delay", seconds=4)  # the worker is still waiting when it is killed
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": test_database_url,
                "FORCED_SALE_VENUE": json.dumps(
                    {
                        "name": "fake-bitstamp",
                        "exchange": "bitstamp",
                        "base_url": venue.base_url,
                        "timeout_ms": 10000,
                        "order_type": "limit",
                        "markets": {"BTC": "BTC/USD", "ETH": "ETH/USD"},
                        **FAKE_CREDENTIALS,
                    }
                ),
                "FORCED_SALE_REPRICE_SECONDS": "3600",
            }
            standard_market()
            facility = facility_with_pool(holdings={"BTC": "1"})
            drawdown_create(facility=facility, amount="265200.00", actor=SYSTEM)
            monitoring_cycle_run(trigger="test")
            price("BTC", "70000")
            monitoring_cycle_run(
                symbols=["BTC"], trigger="test"
            )  # requests the sale; its first step goes to Redis
            sale = ForcedSale.objects.get(facility=facility)

            workers.append(start_worker(env))
            wait_for(lambda: venue.requests("create_order"), 60, "the first worker to place the order")
            wait_for(lambda: venue.requests("fetch_order"), 30, "the first worker to start following it")
            time.sleep(1)  # inside the 4 s fetch: the step's transaction is open
            stop(workers.pop())
            assert len(venue.orders()) == 1

            venue.clear_failures()
            workers.append(start_worker(env))

            def finished():
                forced_sale_step.delay(sale.pk)  # what the periodic task does every 10 s
                time.sleep(0.5)
                sale.refresh_from_db()
                return sale.status == ForcedSaleStatus.FILLED

            wait_for(finished, 90, "the sale to complete after the restart")
            placed = [r.form.get("client_order_id") for r in venue.requests("create_order")]
            assert placed == [f"FS{sale.pk}-1"]  # never placed twice
            assert len(venue.orders()) == 1
            (order,) = sale.orders.all()
            assert order.filled_quantity == order.quantity == venue.orders()[0].filled
    finally:
        app.conf.task_always_eager = True
        for worker in workers:
            print(stop(worker))
    assert balances_projected() == balances_from_legs()
    assert facility_valuation(facility).margin_ratio <= policy_for(facility).target
