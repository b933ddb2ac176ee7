"""How many round trips a drawdown through the API makes (issue 23: on a loaded machine each costs 3–15 ms of
the worker's time, docs/benchmarks.md "Where a drawdown's time goes")."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import SYSTEM
from financing.enums import FacilityStatus
from financing.lending.services import drawdown_create, facility_status_change
from financing.models import Drawdown
from tests.financing.factories import facility_with_pool
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(key_client):
    return key_client("read", "lending", name="oms")


def _draw(api, facility, key: str):
    return api.post(
        "/api/v1/drawdowns/",
        {"facility": facility.pk, "amount": "1000.00"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_lent_drawdown_takes_fourteen_round_trips(market, api):
    facility = facility_with_pool(holdings={"BTC": "1"})
    assert _draw(api, facility, "first").status_code == 201  # the key's first use of the minute is recorded
    with CaptureQueriesContext(connection) as queries:
        assert _draw(api, facility, "second").status_code == 201
    statements = [query["sql"] for query in queries.captured_queries]
    # The API key; the request's savepoint (its transaction outside a test) and its idempotency record; the
    # service's savepoint; the facility's lock (its only look-up: the request's validation reads none); the pool's lock with
    # facility_read and drawdown_limits (the key's earlier drawdown, the firm's cash account and the HKD
    # instrument among them) in one round trip; the ledger transaction, the drawdown, the audit event; the firm-wide row with the firm's
    # loans; the legs; the savepoint's release; the stored response; the request's release.
    assert len(statements) == 14, "\n".join(statements)
    # reference rows are not looked up on their own: the instrument and the firm's cash account
    assert not any(
        sql.startswith(('SELECT "ledger_instrument"', 'SELECT "ledger_account"')) for sql in statements
    )
    assert Drawdown.objects.filter(facility=facility).count() == 2


def test_a_retry_through_the_service_answers_the_first_drawdown_before_any_check(market, api):
    """The drawdown already made with the key is read with the limits, after the facility's lock: a retry gets
    it back even when the facility would now refuse the same drawdown."""
    facility = facility_with_pool(holdings={"BTC": "1"})
    first = drawdown_create(facility=facility, amount="1000.00", actor=SYSTEM, idempotency_key="k1")
    facility_status_change(facility=facility, status=FacilityStatus.SUSPENDED, actor=SYSTEM, reason="a test")
    again = drawdown_create(facility=facility, amount="1000.00", actor=SYSTEM, idempotency_key="k1")
    assert again.pk == first.pk
    assert Drawdown.objects.filter(facility=facility).count() == 1


def test_a_missing_facility_or_an_id_of_the_wrong_type_is_answered_as_before(market, api):
    """The request no longer reads the facility (the drawdown's lock does): its answers are the related
    field's all the same, and nothing is written."""
    facility = facility_with_pool(holdings={"BTC": "1"})
    with writes_nothing():
        missing = api.post("/api/v1/drawdowns/", {"facility": 2**63, "amount": "1.00"}, format="json")
        wrong = api.post("/api/v1/drawdowns/", {"facility": "abc", "amount": "1.00"}, format="json")
        boolean = api.post("/api/v1/drawdowns/", {"facility": True, "amount": "1.00"}, format="json")
    assert [r.status_code for r in (missing, wrong, boolean)] == [400, 400, 400]
    assert missing.json()["error"]["details"]["facility"] == [
        f'Invalid pk "{2**63}" - object does not exist.'
    ]
    assert wrong.json()["error"]["details"]["facility"] == [
        "Incorrect type. Expected pk value, received str."
    ]
    assert boolean.json()["error"]["details"]["facility"] == [
        "Incorrect type. Expected pk value, received bool."
    ]
    assert (
        api.post(
            "/api/v1/drawdowns/", {"facility": str(facility.pk), "amount": "1.00"}, format="json"
        ).status_code
        == 201
    )
