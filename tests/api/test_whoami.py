"""``GET /api/v1/whoami/``: the credentials and nothing else (the floor ``make bench-api`` measures against)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient


def test_a_key_sees_its_name_and_scopes_with_one_query(key_client):
    client = key_client("lending", "read", name="broker-core")
    client.get("/api/v1/whoami/")  # records the key's last use: the next minute's requests only read
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/whoami/")
    assert response.status_code == 200
    assert response.json() == {
        "credential": f"api-key:{client.api_key.pk}",
        "kind": "api_key",
        "name": "broker-core",
        "scopes": ["lending", "read"],
    }
    assert len(queries) == 1  # the key


def test_any_scope_will_do_but_a_wrong_key_is_401(key_client, db):
    assert key_client("prices").get("/api/v1/whoami/").status_code == 200
    response = APIClient().get("/api/v1/whoami/", HTTP_AUTHORIZATION="Bearer mfk_0000_nope")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("role", ["Compliance"])
def test_a_staff_session_sees_its_username(staff_client, role):
    client = staff_client(role)
    response = client.get("/api/v1/whoami/")
    assert response.status_code == 200
    assert response.json()["kind"] == "user"
    assert response.json()["name"] == client.user.username
    assert response.json()["scopes"] == []
