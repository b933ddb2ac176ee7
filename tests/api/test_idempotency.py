"""Idempotency-Key: a retry gets the stored response, a different body with the same key is 409, and
concurrent retries do the work once."""

import datetime
import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from api.financing import views as financing_views
from api.models import IdempotencyRecord
from financing.lending.services import drawdown_create
from financing.models import Drawdown
from financing.selectors import facility_debt
from tests.collateral.factories import standard_market
from tests.financing.factories import facility_with_pool
from tests.helpers import row_counts, writes_nothing


@pytest.fixture
def facility(market):
    return facility_with_pool(holdings={"BTC": "1"}, limit="200000.00")  # LV 312,000; the limit binds


def draw(api, facility, amount="1000.00", key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(
        "/api/v1/drawdowns/", {"facility": facility.pk, "amount": amount, **extra}, format="json", **headers
    )


@pytest.mark.django_db
def test_a_retry_gets_the_stored_response_and_lends_once(key_client, facility):
    api = key_client("lending")
    first = draw(api, facility, key="order-1")
    again = draw(api, facility, key="order-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert Drawdown.objects.count() == 1
    assert facility_debt(facility).principal == Decimal("1000.00")


@pytest.mark.django_db
def test_the_same_key_with_a_different_body_is_409_and_writes_nothing(key_client, facility):
    api = key_client("lending")
    draw(api, facility, key="order-1")
    with writes_nothing():
        response = draw(api, facility, amount="2000.00", key="order-1")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "was already used for a different request (POST /api/v1/drawdowns/)" in error["message"]


@pytest.mark.django_db
def test_the_same_key_on_another_endpoint_is_409(key_client, facility):
    api = key_client("lending")
    draw(api, facility, key="k-1")
    response = api.post(
        "/api/v1/repayments/",
        {"facility": facility.pk, "amount": "1000.00"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert response.status_code == 409


@pytest.mark.django_db
def test_the_body_is_compared_by_meaning_not_layout(key_client, facility):
    api = key_client("lending")
    body = f'{{"facility": {facility.pk}, "amount": "1000.00"}}'
    reordered = f'{{ "amount":"1000.00",\n "facility":{facility.pk} }}'
    first = api.post("/api/v1/drawdowns/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="a")
    again = api.post(
        "/api/v1/drawdowns/", reordered, content_type="application/json", HTTP_IDEMPOTENCY_KEY="a"
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_keys_belong_to_one_credential(key_client, facility):
    first, second = key_client("lending"), key_client("lending")
    assert draw(first, facility, key="shared").status_code == 201
    response = draw(second, facility, key="shared")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert Drawdown.objects.count() == 2


@pytest.mark.django_db
def test_a_refusal_is_stored_and_replayed_too(key_client, facility):
    api = key_client("lending")
    refused = draw(api, facility, amount="200000.01", key="too-much")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "facility_limit_exceeded"
    with writes_nothing():
        again = draw(api, facility, amount="200000.01", key="too-much")
    assert again.status_code == 422
    assert again.content == refused.content
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_without_a_key_every_post_is_new(key_client, facility):
    api = key_client("lending")
    draw(api, facility)
    draw(api, facility)
    assert Drawdown.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "two words", "naïve"])
def test_a_malformed_key_is_refused(key_client, facility, key):
    api = key_client("lending")
    with writes_nothing():
        response = draw(api, facility, key=key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


@pytest.mark.django_db
def test_a_server_error_is_not_stored_so_the_retry_does_the_work(key_client, facility, monkeypatch):
    api = key_client("lending")
    calls = []

    def failing_once(**arguments):
        calls.append(arguments)
        if len(calls) == 1:
            drawdown_create(**arguments)  # the work is done, then something breaks before the answer
            raise RuntimeError("the disk is on fire")
        return drawdown_create(**arguments)

    monkeypatch.setattr(financing_views, "drawdown_create", failing_once)
    failed = draw(api, facility, key="retry-me")
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "server_error"
    assert Drawdown.objects.count() == 0  # rolled back with the failed request
    assert not IdempotencyRecord.objects.exists()
    retried = draw(api, facility, key="retry-me")
    assert retried.status_code == 201
    assert Drawdown.objects.count() == 1


@pytest.mark.django_db
def test_the_ledger_refuses_a_second_drawdown_for_the_key_even_without_the_stored_response(
    key_client, facility
):
    api = key_client("lending")
    first = draw(api, facility, key="order-9")
    IdempotencyRecord.objects.all().delete()  # say the stored responses were purged
    again = draw(api, facility, key="order-9")
    assert again.json()["id"] == first.json()["id"]
    assert Drawdown.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_do_the_work_once_and_all_get_the_same_answer(key_client):
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"})
    api_key = key_client("lending")
    barrier = threading.Barrier(10)

    def retry(_):
        client = type(api_key)()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key}")
        try:
            barrier.wait()
            return draw(client, facility, key="concurrent-1")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(retry, range(10)))
    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 9
    assert Drawdown.objects.count() == 1
    assert facility_debt(facility).principal == Decimal("1000.00")


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_their_own_keys_all_run_and_never_pass_the_limit(key_client):
    standard_market()
    facility = facility_with_pool(holdings={"BTC": "1"}, limit="5000.00")
    api_key = key_client("lending")
    barrier = threading.Barrier(8)

    def request(_):
        client = type(api_key)()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key}")
        try:
            barrier.wait()
            return draw(client, facility, key=str(uuid.uuid4()))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(request, range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [422] * 3
    assert facility_debt(facility).principal == Decimal("5000.00")
    assert IdempotencyRecord.objects.count() == 8


@pytest.mark.django_db
def test_old_stored_responses_can_be_purged(key_client, facility):
    api = key_client("lending")
    draw(api, facility, key="old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - datetime.timedelta(days=31))
    draw(api, facility, key="new")
    out = io.StringIO()
    call_command("purge_idempotency_records", "--days", "30", stdout=out)
    assert out.getvalue().strip() == "Forgot 1 stored response(s) older than 30 days."
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db
def test_a_refusal_after_the_drawdown_was_written_leaves_only_the_stored_response(
    key_client, facility, settings
):
    """The firm-wide cap is checked after the drawdown's rows are written (its shared rows come last), and the
    request runs the service without a savepoint of its own: the service's rolls all of it back."""
    settings.BROKER_CAPITAL_HKD = Decimal("100")  # the firm-wide cap: HK$500
    settings.CLIENT_LOAN_SHARE_OF_CAPITAL = Decimal("5")  # a client's cap (HK$500) does not bind first
    api = key_client("lending")
    before = row_counts()
    refused = draw(api, facility, amount="500.01", key="over-the-cap")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "firm_limit_exceeded"
    after = row_counts()
    changed = {table: after[table] - before[table] for table in before if after[table] != before[table]}
    assert changed == {"api_idempotencyrecord": 1}
    assert draw(api, facility, amount="500.00", key="at-the-cap").status_code == 201
