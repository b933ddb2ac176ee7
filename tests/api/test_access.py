"""A client user sees only their own client's records, on every endpoint: lists, filters, details and
writes are all tried with the other client's ids. Staff and API keys see every client."""

import pytest
from rest_framework.test import APIClient

from accounts.audit import SYSTEM
from accounts.models import Client, CreditProfile
from collateral.models import CollateralMovement, CustodyMovement
from financing.models import (
    AutomaticTopUp,
    Drawdown,
    Facility,
    ForcedSale,
    MarginCall,
    Repayment,
    StandingTopUpInstruction,
)
from notifications.models import Event, WebhookEndpoint
from notifications.webhook_endpoints import webhook_endpoint_create
from tests.api.conftest import client_user
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

# resource → how to find a side's record of it
CLIENT_RECORDS = {
    "clients": lambda side: side.client.pk,
    "credit-profiles": lambda side: side.profile.pk,
    "facilities": lambda side: side.facility.pk,
    "collateral-movements": lambda side: side.movement.pk,
    "drawdowns": lambda side: side.drawdown.pk,
    "repayments": lambda side: side.repayment.pk,
    "margin-calls": lambda side: side.margin_call.pk,
    "forced-sales": lambda side: side.forced_sale.pk,
    "events": lambda side: str(side.event.pk),
    "custody-movements": lambda side: side.custody_movement.pk,
    "standing-top-up-instructions": lambda side: side.instruction.pk,
    "automatic-top-ups": lambda side: side.top_up.pk,
}
# filters that name a client's records: resource → [(parameter, how to find the side's value)]
CLIENT_FILTERS = {
    "credit-profiles": [("client", lambda side: side.client.pk)],
    "facilities": [
        ("client", lambda side: side.client.pk),
        ("reference", lambda side: side.facility.reference),
    ],
    "collateral-movements": [("client", lambda side: side.client.pk)],
    "drawdowns": [("facility", lambda side: side.facility.pk), ("client", lambda side: side.client.pk)],
    "repayments": [("facility", lambda side: side.facility.pk), ("client", lambda side: side.client.pk)],
    "margin-calls": [("facility", lambda side: side.facility.pk), ("client", lambda side: side.client.pk)],
    "forced-sales": [("facility", lambda side: side.facility.pk), ("client", lambda side: side.client.pk)],
    "events": [("client", lambda side: side.client.pk)],
    "clients": [("reference", lambda side: side.client.reference)],
    "custody-movements": [
        ("client", lambda side: side.client.pk),
        ("external_reference", lambda side: side.custody_movement.external_reference),
    ],
    "standing-top-up-instructions": [("client", lambda side: side.client.pk)],
    "automatic-top-ups": [
        ("client", lambda side: side.client.pk),
        ("facility", lambda side: side.facility.pk),
        ("margin_call", lambda side: side.margin_call.pk),
    ],
}


# resource → every record of a side's client, as the database has them
CLIENT_LISTS = {
    "clients": lambda side: Client.objects.filter(pk=side.client.pk),
    "credit-profiles": lambda side: CreditProfile.objects.filter(client=side.client),
    "facilities": lambda side: Facility.objects.filter(client=side.client),
    "collateral-movements": lambda side: CollateralMovement.objects.filter(pool__client=side.client),
    "drawdowns": lambda side: Drawdown.objects.filter(facility__client=side.client),
    "repayments": lambda side: Repayment.objects.filter(facility__client=side.client),
    "margin-calls": lambda side: MarginCall.objects.filter(facility__client=side.client),
    "forced-sales": lambda side: ForcedSale.objects.filter(facility__client=side.client),
    "events": lambda side: Event.objects.filter(client=side.client),
    "custody-movements": lambda side: CustodyMovement.objects.filter(client=side.client),
    "standing-top-up-instructions": lambda side: StandingTopUpInstruction.objects.filter(client=side.client),
    "automatic-top-ups": lambda side: AutomaticTopUp.objects.filter(facility__client=side.client),
}


def expected(resource: str, side) -> list[str]:
    records = sorted(str(pk) for pk in CLIENT_LISTS[resource](side).values_list("pk", flat=True))
    assert records, f"the world has no {resource} of {side.client}"
    return records


def ids(response) -> list:
    assert response.status_code == 200, response.json()
    return [str(row["id"]) for row in response.json()["results"]]


@pytest.mark.parametrize("resource", sorted(CLIENT_RECORDS))
def test_a_client_user_lists_only_their_own_records(world, resource):
    mine, _ = world
    assert sorted(ids(mine.api().get(f"/api/v1/{resource}/"))) == expected(resource, mine)


@pytest.mark.parametrize("resource", sorted(CLIENT_RECORDS))
def test_a_client_user_reads_their_own_record_and_not_the_other_clients(world, resource):
    mine, theirs = world
    api = mine.api()
    own = api.get(f"/api/v1/{resource}/{CLIENT_RECORDS[resource](mine)}/")
    assert own.status_code == 200
    other = api.get(f"/api/v1/{resource}/{CLIENT_RECORDS[resource](theirs)}/")
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert str(theirs.client.name) not in other.content.decode()


@pytest.mark.parametrize(
    ("resource", "parameter", "value"),
    [
        (resource, parameter, value)
        for resource, pairs in sorted(CLIENT_FILTERS.items())
        for parameter, value in pairs
    ],
)
def test_filtering_by_the_other_clients_ids_finds_nothing(world, resource, parameter, value):
    mine, theirs = world
    api = mine.api()
    assert ids(api.get(f"/api/v1/{resource}/", {parameter: value(theirs)})) == []
    assert sorted(ids(api.get(f"/api/v1/{resource}/", {parameter: value(mine)}))) == expected(resource, mine)


@pytest.mark.parametrize("resource", ["assets", "prices", "fx-rates"])
def test_reference_data_is_the_same_for_everyone(world, key_client, resource):
    mine, _ = world
    assert (
        mine.api().get(f"/api/v1/{resource}/").json() == key_client("read").get(f"/api/v1/{resource}/").json()
    )


def test_webhook_endpoints_are_the_brokers_not_a_clients(world):
    mine, _ = world
    endpoint = webhook_endpoint_create(name="crm", url="https://crm.example/hooks", actor=SYSTEM)
    api = mine.api()
    for path in ("/api/v1/webhook-endpoints/", f"/api/v1/webhook-endpoints/{endpoint.pk}/"):
        response = api.get(path)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "not_for_client_users"
    with writes_nothing():
        response = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/deactivate/")
    assert response.status_code == 403
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).is_active


def test_a_client_user_cannot_draw_down_on_the_other_clients_facility(world):
    mine, theirs = world
    api = mine.api()
    with writes_nothing():
        response = api.post(
            "/api/v1/drawdowns/", {"facility": theirs.facility.pk, "amount": "1000.00"}, format="json"
        )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["facility"] == [
        f'Invalid pk "{theirs.facility.pk}" - object does not exist.'
    ]


def test_a_client_user_draws_down_on_their_own_facility(market):
    facility = facility_with_pool(holdings={"BTC": "1"})
    api = APIClient()
    user = client_user(facility.client)
    login_as(api, user)
    response = api.post("/api/v1/drawdowns/", {"facility": facility.pk, "amount": "1000.00"}, format="json")
    assert response.status_code == 201
    assert response.json()["made_by"] == user.username


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "post",
            "/api/v1/repayments/",
            lambda mine, theirs: {"facility": theirs.facility.pk, "amount": "1.00"},
        ),
        (
            "post",
            "/api/v1/repayments/",
            lambda mine, theirs: {"facility": mine.facility.pk, "amount": "1.00"},
        ),
        (
            "post",
            "/api/v1/collateral-movements/",
            lambda mine, theirs: {
                "client": theirs.client.pk,
                "kind": "withdrawal",
                "asset": "BTC",
                "quantity": "1",
            },
        ),
        (
            "post",
            "/api/v1/collateral-movements/",
            lambda mine, theirs: {
                "client": mine.client.pk,
                "kind": "deposit",
                "asset": "HKD",
                "quantity": "1.00",
            },
        ),
        (
            "post",
            "/api/v1/custody-movements/",
            lambda mine, theirs: {
                "client": mine.client.pk,
                "kind": "received",
                "asset": "HKD",
                "quantity": "1000000.00",
                "external_reference": "MINE-1",
            },
        ),
        ("patch", "/api/v1/clients/{theirs.client.pk}/", lambda mine, theirs: {"name": "Taken over"}),
        ("patch", "/api/v1/clients/{mine.client.pk}/", lambda mine, theirs: {"kyc_status": "approved"}),
        (
            "post",
            "/api/v1/credit-profiles/{theirs.profile.pk}/limit-change-requests/",
            lambda mine, theirs: {"credit_limit": "99000000.00"},
        ),
        (
            "post",
            "/api/v1/credit-profiles/{mine.profile.pk}/limit-change-requests/",
            lambda mine, theirs: {"credit_limit": "99000000.00"},
        ),
        (
            "post",
            "/api/v1/prices/",
            lambda mine, theirs: {"source": "me", "prices": [{"symbol": "0005.HK", "price": "1"}]},
        ),
        ("post", "/api/v1/clients/", lambda mine, theirs: {"name": "Shell Co", "kind": "corporation"}),
        (
            "post",
            "/api/v1/assets/",
            lambda mine, theirs: {
                "symbol": "X",
                "name": "X",
                "kind": "security",
                "currency": "HKD",
                "decimals": 0,
                "haircut": "0",
            },
        ),
        (
            "post",
            "/api/v1/webhook-endpoints/",
            lambda mine, theirs: {"name": "me", "url": "https://me.example/"},
        ),
    ],
)
def test_a_client_user_makes_no_other_write(world, method, path, body):
    mine, theirs = world
    api = mine.api()
    with writes_nothing():
        response = getattr(api, method)(
            path.format(mine=mine, theirs=theirs), body(mine, theirs), format="json"
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_for_client_users"


@pytest.mark.parametrize("resource", sorted(CLIENT_RECORDS))
def test_staff_and_keys_see_every_client(world, key_client, staff_client, resource):
    mine, theirs = world
    everyone = sorted(expected(resource, mine) + expected(resource, theirs))
    assert sorted(ids(key_client("read").get(f"/api/v1/{resource}/"))) == everyone
    assert sorted(ids(staff_client("Compliance").get(f"/api/v1/{resource}/"))) == everyone
