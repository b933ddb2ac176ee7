"""API keys: created once and shown once, stored hashed, scoped, revocable, last use recorded; staff and
client users through the session, with CSRF on writes."""

import datetime
import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from api.models import ApiKey
from api.services import api_key_create, api_key_record_use, api_key_revoke
from core.exceptions import InvalidTransition
from financing.lending.services import drawdown_create
from financing.models import Drawdown
from tests.accounts.factories import StaffFactory
from tests.api.conftest import client_user
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db

KEY_FORMAT = re.compile(r"^mfk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def facility(market):
    facility = facility_with_pool(holdings={"BTC": "1"})  # LV 312,000: 265,200 may be drawn
    drawdown_create(facility=facility, amount="100000.00", actor=SYSTEM)
    return facility


def drawdown_body(facility, amount="1000.00"):
    return {"facility": facility.pk, "amount": amount}


# --- the key itself ------------------------------------------------------------------------------


def test_create_api_key_prints_the_key_once_and_stores_only_its_digest():
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "--name", "oms-prod", "--scopes", "read,lending", stdout=out, stderr=err)
    raw_key = out.getvalue().strip()
    assert KEY_FORMAT.match(raw_key)
    api_key = ApiKey.objects.get(name="oms-prod")
    assert api_key.scopes == ["lending", "read"]
    assert api_key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith(api_key.prefix + "_")
    assert not ApiKey.objects.filter(key_hash=raw_key).exists()
    assert f"Created API key oms-prod ({api_key.prefix}…)" in err.getvalue()
    event = AuditEvent.objects.get(action="api_key.created")
    assert event.actor_label == "manage.py create_api_key"
    assert raw_key not in str(event.after)


def test_create_api_key_refuses_unknown_scopes_and_duplicate_names():
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_key", "--name", "x", "--scopes", "read,everything", stdout=io.StringIO())
    call_command(
        "create_api_key", "--name", "x", "--scopes", "read", stdout=io.StringIO(), stderr=io.StringIO()
    )
    with pytest.raises(CommandError, match="already an API key named x"):
        call_command("create_api_key", "--name", "x", "--scopes", "read", stdout=io.StringIO())


def test_a_key_reads_with_the_read_scope(key_client, facility):
    response = key_client("read").get(f"/api/v1/facilities/{facility.pk}/")
    assert response.status_code == 200
    assert response.json()["reference"] == facility.reference


def test_without_credentials_the_answer_is_401_with_the_scheme():
    response = APIClient().get("/api/v1/facilities/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer mfk_00000000_" + "x" * 43, "invalid_api_key"),
        ("Bearer not-a-key", "invalid_api_key"),
        ("Bearer", "malformed_authorization"),
        ("Bearer two parts", "malformed_authorization"),
    ],
)
def test_a_wrong_key_is_401(db, header, code):
    response = APIClient().get("/api/v1/facilities/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_a_key_with_a_wrong_secret_but_a_real_prefix_is_refused(key_client):
    client = key_client("read")
    forged = client.raw_key[:-4] + ("AAAA" if not client.raw_key.endswith("AAAA") else "BBBB")
    response = APIClient().get("/api/v1/assets/", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_revoked_key_is_refused_and_the_revocation_is_audited(key_client, facility):
    client = key_client("read", "lending")
    assert client.get("/api/v1/facilities/").status_code == 200
    api_key_revoke(api_key=client.api_key, actor=SYSTEM)
    with writes_nothing():
        response = client.post("/api/v1/drawdowns/", drawdown_body(facility), format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_revoked"
    assert client.get("/api/v1/facilities/").status_code == 401
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=str(client.api_key.pk)).exists()


def test_last_use_is_recorded_to_the_minute(key_client):
    client = key_client("read")
    assert client.api_key.last_used_at is None
    client.get("/api/v1/assets/")
    first = ApiKey.objects.get(pk=client.api_key.pk).last_used_at
    assert timezone.now() - first < datetime.timedelta(seconds=5)
    client.get("/api/v1/assets/")
    assert ApiKey.objects.get(pk=client.api_key.pk).last_used_at == first  # no write within the minute
    api_key = ApiKey.objects.get(pk=client.api_key.pk)
    later = first + datetime.timedelta(minutes=2)
    api_key_record_use(api_key=api_key, now=later)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == later


# --- scopes --------------------------------------------------------------------------------------

WRITES = [
    # (scope needed, method, path, body maker)
    ("lending", "post", "/api/v1/drawdowns/", lambda f: {"facility": f.pk, "amount": "1000.00"}),
    ("lending", "post", "/api/v1/repayments/", lambda f: {"facility": f.pk, "amount": "1.00"}),
    (
        "prices",
        "post",
        "/api/v1/prices/",
        lambda f: {"source": "md", "prices": [{"symbol": "0700.HK", "price": "1"}]},
    ),
    (
        "collateral",
        "post",
        "/api/v1/collateral-movements/",
        lambda f: {"client": f.client_id, "kind": "deposit", "asset": "HKD", "quantity": "1.00"},
    ),
    ("admin", "post", "/api/v1/clients/", lambda f: {"name": "New Co", "kind": "corporation"}),
    ("admin", "patch", "/api/v1/clients/{client}/", lambda f: {"name": "Renamed Co"}),
    (
        "admin",
        "post",
        "/api/v1/assets/",
        lambda f: {
            "symbol": "0001.HK",
            "name": "CKH",
            "kind": "security",
            "currency": "HKD",
            "decimals": 0,
            "haircut": "0.4",
        },
    ),
    (
        "admin",
        "post",
        "/api/v1/webhook-endpoints/",
        lambda f: {"name": "crm", "url": "https://crm.example/hooks"},
    ),
]


@pytest.mark.parametrize(("scope", "method", "path", "body"), WRITES)
def test_each_write_needs_its_own_scope(key_client, facility, scope, method, path, body):
    path = path.format(client=facility.client_id)
    without_it = key_client(*[s for s in ("read", "prices", "collateral", "lending", "admin") if s != scope])
    with_it = key_client(scope)
    with writes_nothing():
        refused = getattr(without_it, method)(path, body(facility), format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "scope_missing"
    assert f"does not have the '{scope}' scope" in refused.json()["error"]["message"]
    allowed = getattr(with_it, method)(path, body(facility), format="json")
    assert allowed.status_code in (200, 201), allowed.json()


def test_reading_needs_the_read_scope(key_client):
    response = key_client("lending", "prices", "collateral", "admin").get("/api/v1/assets/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "scope_missing"


def test_the_api_key_is_the_actor_in_the_audit_trail_and_the_ledger(key_client, facility):
    client = key_client("lending", name="oms-prod")
    response = client.post("/api/v1/drawdowns/", drawdown_body(facility, "5000.00"), format="json")
    assert response.status_code == 201
    assert response.json()["made_by"] == "api-key:oms-prod"
    event = AuditEvent.objects.filter(action="drawdown.created").latest("pk")
    assert event.actor_label == "api-key:oms-prod"
    assert event.actor is None
    assert Drawdown.objects.get(pk=response.json()["id"]).transaction.actor_label == "api-key:oms-prod"


# --- staff and client users (session) ------------------------------------------------------------


def test_staff_are_checked_against_their_role(staff_client, facility):
    compliance = staff_client("Compliance")
    assert compliance.get(f"/api/v1/facilities/{facility.pk}/").status_code == 200
    with writes_nothing():
        refused = compliance.post("/api/v1/drawdowns/", drawdown_body(facility), format="json")
    assert refused.status_code == 403
    assert "lacks the permission financing.add_drawdown" in refused.json()["error"]["message"]
    credit = staff_client("Credit officer")
    response = credit.post("/api/v1/drawdowns/", drawdown_body(facility), format="json")
    assert response.status_code == 201
    assert response.json()["made_by"] == credit.user.username


def test_a_session_write_needs_the_csrf_token(facility):
    client = APIClient(enforce_csrf_checks=True)
    login_as(client, StaffFactory(role="Credit officer"))
    with writes_nothing():
        response = client.post("/api/v1/drawdowns/", drawdown_body(facility), format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_an_inactive_user_is_not_let_in(facility):
    user = StaffFactory(role="Credit officer")
    client = APIClient()
    login_as(client, user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get("/api/v1/facilities/").status_code in (401, 403)


def test_a_user_who_is_neither_staff_nor_a_client_sees_nothing(facility):
    client = APIClient()
    login_as(client, client_user(None))
    response = client.get("/api/v1/facilities/")
    assert response.status_code == 403


# --- the admin -----------------------------------------------------------------------------------


def test_the_admin_creates_a_key_shows_it_once_and_revokes_it(client):
    admin_user = StaffFactory(role="Administrator")
    login_as(client, admin_user)
    response = client.post(
        reverse("admin:api_apikey_add"),
        {"name": "custody-prod", "scopes": ["read", "collateral"], "throttle_rate": ""},
    )
    assert response.status_code == 200
    body = response.content.decode()
    raw_key = re.search(r"mfk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", body).group(0)
    api_key = ApiKey.objects.get(name="custody-prod")
    assert api_key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert api_key.created_by == admin_user.username
    change_page = client.get(reverse("admin:api_apikey_change", args=[api_key.pk])).content.decode()
    assert raw_key not in change_page
    assert api_key.prefix in change_page
    response = client.post(
        reverse("admin:api_apikey_changelist"), {"action": "revoke", "_selected_action": [api_key.pk]}
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert APIClient().get("/api/v1/assets/", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code == 401
    created, revoked = AuditEvent.objects.filter(action__startswith="api_key.").order_by("created_at", "pk")
    assert (created.action, created.actor, created.after["scopes"]) == (
        "api_key.created",
        admin_user,
        ["collateral", "read"],
    )
    assert raw_key not in str(created.after)
    assert (revoked.action, revoked.actor, revoked.target_id) == (
        "api_key.revoked",
        admin_user,
        str(api_key.pk),
    )


def test_a_key_cannot_be_revoked_twice(db):
    api_key, _ = api_key_create(name="twice", scopes=["read"], actor=SYSTEM)
    api_key_revoke(api_key=api_key, actor=SYSTEM)
    with pytest.raises(InvalidTransition, match="already revoked"):
        api_key_revoke(api_key=api_key, actor=SYSTEM)
