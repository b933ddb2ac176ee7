"""The OpenAPI document and the docs, and schemathesis against the live schema: every operation, positive
and negative inputs, zero 5xx and every response as the schema says."""

import io
import json
import os
import re

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.audit import SYSTEM
from api.services import api_key_create
from config.wsgi import application
from notifications.event_types import EVENT_TYPES

pytestmark = pytest.mark.django_db

RESOURCES = [
    "clients",
    "credit-profiles",
    "assets",
    "prices",
    "fx-rates",
    "collateral-movements",
    "facilities",
    "drawdowns",
    "repayments",
    "margin-calls",
    "forced-sales",
    "webhook-endpoints",
    "events",
    "custody-movements",
    "custody-holdings",
    "standing-top-up-instructions",
    "automatic-top-ups",
]


@pytest.fixture
def document(key_client):
    response = key_client("read").get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_served_to_authenticated_callers_only(key_client, staff_client):
    anonymous = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert "openapi" not in anonymous.content.decode()
    assert key_client("prices").get("/api/schema/").status_code == 200
    assert staff_client("Compliance").get("/api/schema/").status_code == 200


def test_the_docs_send_an_anonymous_browser_to_log_in(db):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/api/auth/login/?next=/api/docs/"


def test_the_schema_is_valid_openapi_3_1_without_warnings(db):
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert out.getvalue().startswith("openapi: 3.1.0")


def test_every_event_type_sent_to_webhooks_is_in_the_schema_with_its_body(document):
    webhooks = document["webhooks"]
    assert set(webhooks) == {key for key, kind in EVENT_TYPES.items() if kind.webhooks}
    assert "alerts.digest" not in webhooks  # staff e-mail only
    issued = webhooks["margin_call.issued"]["post"]
    body = issued["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["type"] == {"type": "string", "enum": ["margin_call.issued"]}
    assert {"repayment_due", "top_up_due", "deadline"} <= set(body["properties"]["data"]["required"])
    assert "X-Margin-Signature" in {parameter["name"] for parameter in issued["parameters"]}


def test_every_resource_is_in_the_schema_with_the_error_shape_and_idempotency(document):
    paths = document["paths"]
    for resource in RESOURCES:
        assert f"/api/v1/{resource}/" in paths
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "mfk_<prefix>_<secret>",
        "description": "An API key made with `manage.py create_api_key` or in the staff admin.",
    }
    for path, item in paths.items():
        for method, operation in item.items():
            if method not in {"get", "post", "patch"}:
                continue
            for status in ("400", "401", "403", "429"):
                assert operation["responses"][status]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (path, method, status)
            if method == "post":
                assert "422" in operation["responses"]
                assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"]), path


def test_amounts_are_strings_in_the_schema(document):
    schemas = document["components"]["schemas"]
    assert schemas["CashMovementInRequest"]["properties"]["amount"]["type"] == "string"
    assert schemas["FacilityOut"]["properties"]["margin_ratio"]["type"] == [
        "string",
        "null",
    ]  # null: infinite


def test_the_docs_are_served_from_the_sidecar_not_a_cdn(staff_client):
    asset = "swagger-ui-dist/swagger-ui-bundle.js"
    body = staff_client("Operations").get("/api/docs/").content.decode()
    assert asset in body
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", body), "loads something from another host"
    assert finders.find(f"drf_spectacular_sidecar/{asset}")
    # The page's script comes from its own URL: the content security policy allows no inline script.
    script = staff_client("Operations").get("/api/docs/?script").content.decode()
    assert "/api/schema/" in script
    assert '"validatorUrl": null' in script  # no call to validator.swagger.io either


# --- schemathesis --------------------------------------------------------------------------------


@pytest.fixture
def wsgi_in_test_transaction():
    """Django closes the database connection at the start and end of each request it serves through WSGI;
    inside a test that would close the test's own transaction. Its test client disconnects those signals
    for the same reason; so do we, around the schemathesis run."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_key(world, wsgi_in_test_transaction):
    """A key with every scope and room for the whole run, against the two-client world."""
    _, raw_key = api_key_create(
        name="schemathesis",
        scopes=["read", "prices", "collateral", "lending", "admin", "risk"],
        actor=SYSTEM,
        throttle_rate="100000/min",
    )
    return raw_key


# The schema as the application serves it, made without a request: serving it needs a caller, and a caller
# needs the database, which a module being collected has not got.
DOCUMENT = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = application


def test_the_fuzzed_schema_is_the_one_served(document):
    assert document == DOCUMENT


# Bounded so that the suite stays quick; FUZZ_EXAMPLES=500 FUZZ_RANDOM=1 make test … for a deeper, random run.
schema.config.generation.update(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20")), deterministic=not os.environ.get("FUZZ_RANDOM")
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_api_against_its_own_schema(case, fuzz_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"}, checks=CHECKS, app=application)
