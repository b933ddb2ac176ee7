"""Queueing after commit with the Celery broker down: the write stands and answers as usual, the failure is
logged, and the periodic pick-up does the work."""

import logging
import re
import socket

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import roles
from accounts.audit import SYSTEM
from config.celery import app
from core.tasks import PERIODIC_PICK_UP
from financing.enums import ForcedSaleStatus, PauseReason
from financing.lending.services import drawdown_create
from financing.liquidation.forced_sales import forced_sales_step_all, kill_switch
from financing.models import ForcedSale, StandingTopUpInstruction
from financing.monitoring.cycle import monitoring_cycle_run
from notifications.enums import DeliveryStatus
from notifications.models import OutboxMessage
from notifications.tasks import deliver_due_messages
from tests.accounts.factories import StaffFactory
from tests.api.conftest import client_user
from tests.collateral.factories import price
from tests.financing.factories import facility_with_pool
from tests.helpers import REPOSITORY, login_as

pytestmark = pytest.mark.django_db(transaction=True)  # the request commits, and its on-commit work runs


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free once the socket closes: nothing listens there


def _reset_producers() -> None:
    """Make the app look its connection and producer pools up again for the broker URL now configured. The
    pools themselves live in kombu's registry, per URL, shared by every later test: they are left open."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker_down():
    """Tasks really go to a broker (not run eagerly), and the broker is a port where nothing listens."""
    app.conf.task_always_eager = False
    app.conf.broker_write_url = f"redis://127.0.0.1:{_closed_port()}/0"
    _reset_producers()
    try:
        yield
    finally:
        app.conf.broker_write_url = None
        app.conf.task_always_eager = True
        _reset_producers()


def test_a_standing_top_up_request_commits_and_answers_201_with_the_broker_down(market, broker_down, caplog):
    facility = facility_with_pool(holdings={"BTC": "1"})
    portal = APIClient()
    login_as(portal, client_user(facility.client))
    body = {"client": facility.client_id, "trigger": "warning", "asset_order": ["ETH"]}
    with caplog.at_level(logging.ERROR, logger="core.tasks"):
        response = portal.post("/api/v1/standing-top-up-instructions/", body, format="json")
    assert response.status_code == 201, response.content
    assert StandingTopUpInstruction.objects.filter(pk=response.json()["id"]).exists()
    assert "Could not queue notifications.deliver_outbox_message" in caplog.text
    assert "notifications.deliver_due_messages picks the work up" in caplog.text
    pending = OutboxMessage.objects.filter(status=DeliveryStatus.PENDING)
    assert pending.exists()
    deliver_due_messages()  # the periodic delivery, as beat runs it
    assert not OutboxMessage.objects.filter(status=DeliveryStatus.PENDING).exists()


def test_engaging_the_kill_switch_in_the_admin_works_with_the_broker_down(client, market, broker_down):
    facility = facility_with_pool(holdings={"0700.HK": "1000"})
    drawdown_create(facility=facility, amount="119000.00", actor=SYSTEM)
    monitoring_cycle_run(trigger="test")
    price("0700.HK", "280")
    monitoring_cycle_run(symbols=["0700.HK"], trigger="test")  # a sale is requested; its step not queued
    sale = ForcedSale.objects.get(facility=facility)
    login_as(client, StaffFactory(role=roles.RISK_OFFICER))
    url = reverse("admin:financing_killswitch_change", args=[kill_switch().pk])
    response = client.post(url, {"reason": "venue outage", "request_lift_reason": ""})
    assert response.status_code == 302
    assert kill_switch().engaged
    forced_sales_step_all()  # the periodic pick-up of the steps that were never queued
    sale.refresh_from_db()
    assert (sale.status, sale.pause_reason) == (ForcedSaleStatus.PAUSED, PauseReason.KILL_SWITCH)


@pytest.mark.django_db(transaction=False)
def test_every_task_queued_after_commit_has_a_periodic_pick_up():
    queued = set()
    for path in REPOSITORY.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        queued |= set(re.findall(r'task_queue_on_commit\(\s*"([\w.]+)"', path.read_text()))
    assert queued, "no task_queue_on_commit call found"
    assert queued <= set(PERIODIC_PICK_UP), f"no periodic pick-up named for {queued - set(PERIODIC_PICK_UP)}"
    schedules = "".join(path.read_text() for path in REPOSITORY.glob("*/migrations/*.py"))
    for task in set(PERIODIC_PICK_UP.values()):
        assert f'"{task}"' in schedules, f"no migration schedules {task}"
