"""Fixtures for the API tests: clients of the API (keys, staff, client users) and a small world of two
clients, each with a facility, collateral, a drawdown, a repayment, a margin call, a forced sale and an
event, so that every endpoint has records of both to show or to hide."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.audit import SYSTEM
from accounts.models import Client, CreditProfile, User
from accounts.services import approval_request_approve
from api.models import ApiKey
from api.services import api_key_create
from collateral.custody import custody_holding_receive
from collateral.models import CollateralMovement, CustodyMovement
from financing.enums import ForcedSaleTrigger, TopUpTrigger
from financing.lending.services import drawdown_create, repayment_create
from financing.margin_calls.services import forced_sale_request, margin_call_issue
from financing.models import (
    AutomaticTopUp,
    Drawdown,
    Facility,
    ForcedSale,
    MarginCall,
    Repayment,
    StandingTopUpInstruction,
)
from financing.selectors import pending_sign_off_of
from financing.top_ups.automatic import automatic_top_up_run
from financing.top_ups.instructions import standing_top_up_request
from notifications.models import Event
from tests.accounts.factories import StaffFactory, UserFactory
from tests.collateral.factories import asset, price
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as

_names = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    cache.clear()
    yield
    cache.clear()


class KeyClient(APIClient):
    api_key: ApiKey
    raw_key: str


@pytest.fixture
def key_client(db):
    """``key_client("read", "lending")``: an API client authenticated with a new key of those scopes."""

    def make(*scopes: str, name: str | None = None, rate: str = "") -> KeyClient:
        api_key, raw_key = api_key_create(
            name=name or f"system-{next(_names)}", scopes=list(scopes), actor=SYSTEM, throttle_rate=rate
        )
        client = KeyClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        client.api_key, client.raw_key = api_key, raw_key
        return client

    return make


@pytest.fixture
def staff_client(db):
    """``staff_client("Credit officer")``: an API client logged in (session) as staff of that role."""

    def make(role: str) -> APIClient:
        client = APIClient()
        client.user = StaffFactory(role=role)
        login_as(client, client.user)
        return client

    return make


@dataclass
class Side:
    """One client's records."""

    client: Client
    profile: CreditProfile
    facility: Facility
    movement: CollateralMovement
    drawdown: Drawdown
    repayment: Repayment
    margin_call: MarginCall
    forced_sale: ForcedSale
    event: Event
    user: User
    custody_movement: CustodyMovement
    instruction: StandingTopUpInstruction
    top_up: AutomaticTopUp | None = None

    def api(self) -> APIClient:
        """An API client logged in as this client's user."""
        client = APIClient()
        login_as(client, self.user)
        return client


def client_user(client: Client | None) -> User:
    """A user of ``client`` (saved after the factory set the password, so that a session stays valid)."""
    user = UserFactory(client=client)
    user.save()
    return user


def _side(name: str, signer: User) -> Side:
    facility = facility_with_pool(holdings={"BTC": "1"})  # MV 780,000; LV 312,000
    drawdown = drawdown_create(facility=facility, amount="250000.00", actor=SYSTEM)
    repayment = repayment_create(facility=facility, amount="10000.00", actor=SYSTEM)
    user = client_user(facility.client)
    # HSBC held free in custody, and a standing instruction that names only ETH: an automatic top-up at the
    # margin call below finds nothing it may move.
    custody_movement = custody_holding_receive(
        client=facility.client,
        asset=asset("0005.HK"),
        quantity="400",
        actor=SYSTEM,
        external_reference=f"W-{name}",
    )
    instruction = standing_top_up_request(
        client=facility.client, trigger=TopUpTrigger.MARGIN_CALL, asset_order=["ETH"], actor=user
    )
    approval_request_approve(request=pending_sign_off_of(instruction), actor=signer)
    return Side(
        client=facility.client,
        profile=facility.client.credit_profile,
        facility=facility,
        movement=CollateralMovement.objects.get(pool__client=facility.client),
        drawdown=drawdown,
        repayment=repayment,
        margin_call=None,
        forced_sale=None,
        event=None,
        user=user,
        custody_movement=custody_movement,
        instruction=instruction,
    )


@pytest.fixture
def world(market):
    """Two clients, ``mine`` and ``theirs``, each with a facility at 240,000 / 312,000 = 76.92%. BTC falls
    to US$75,000 for a moment (240,000 / 234,000 = 102.56%): both get a margin call (and its event), and
    staff ask for a forced sale of each (and its event); then BTC is back at US$100,000. Each client holds
    HSBC free in custody and has a standing top-up instruction (asked for by the client user, signed off by a
    credit officer) naming only ETH, so the automatic top-up run at the call records that nothing could move."""
    signer = StaffFactory(role="Credit officer")
    mine, theirs = _side("mine", signer), _side("theirs", signer)
    price("BTC", "75000")
    for side in (mine, theirs):
        side.margin_call = margin_call_issue(facility=side.facility, actor=SYSTEM)
        side.top_up = automatic_top_up_run(
            facility=side.facility, actor=SYSTEM, trigger=TopUpTrigger.MARGIN_CALL
        )
        side.forced_sale = forced_sale_request(
            facility=side.facility, trigger=ForcedSaleTrigger.MANUAL, actor=SYSTEM
        )
        side.event = Event.objects.filter(client=side.client, type="margin_call.issued").get()
    price("BTC", "100000")
    return mine, theirs
