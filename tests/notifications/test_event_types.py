"""The registry of event types: every type the platform records is in it (recording another is refused), its
statuses agree with financing's, the bodies it sends match their schemas, and docs/webhooks.md lists every
type and holds a receiver that really checks the signature."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
from django.db import transaction

from financing.enums import ForcedSaleStatus, MarginCallStatus
from financing.margin_calls.batch import EVENT_TYPES as LADDER_EVENT_TYPES
from notifications.event_types import EVENT_TYPES, FORCED_SALE_STATUSES, MARGIN_CALL_STATUSES, webhook_schema
from notifications.models import Event
from notifications.services import EventSpec, event_record, events_record, webhook_body
from notifications.signing import sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def test_the_statuses_agree_with_financing():
    assert list(MarginCallStatus.values) == MARGIN_CALL_STATUSES
    assert list(ForcedSaleStatus.values) == FORCED_SALE_STATUSES
    for status in MarginCallStatus.values:
        assert f"margin_call.{status}" in EVENT_TYPES
    for status in ForcedSaleStatus.values:
        assert f"forced_sale.{status}" in EVENT_TYPES


def test_the_ladders_sql_writes_only_registered_types():
    assert set(LADDER_EVENT_TYPES) <= set(EVENT_TYPES)


@pytest.mark.django_db
def test_an_unregistered_type_is_refused_and_nothing_is_written():
    with (
        transaction.atomic(),
        pytest.raises(RuntimeError, match=r"not registered in notifications/event_types\.py"),
    ):
        events_record([EventSpec(type="margin.call_me_maybe", summary="x", payload={})])
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_body_the_platform_sends_matches_its_schema():
    with transaction.atomic():
        event = event_record(
            type="margin_call.issued",
            summary="Margin call on F000001",
            payload={
                "margin_call": 1,
                "facility": "F000001",
                "status": "issued",
                "margin_ratio_at_issue": "1.042",
                "debt_at_issue": "100000.00",
                "margin_value_at_issue": "95969.29",
                "repayment_due": "18426.10",
                "top_up_due": "21677.76",
                "deadline": "2026-03-03T04:00:00+00:00",
            },
        )
    body = json.loads(webhook_body(event))
    jsonschema.validate(body, webhook_schema(EVENT_TYPES["margin_call.issued"]))
    body["data"].pop("repayment_due")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, webhook_schema(EVENT_TYPES["margin_call.issued"]))


def test_every_schema_is_a_valid_json_schema():
    for event_type in EVENT_TYPES.values():
        jsonschema.Draft202012Validator.check_schema(webhook_schema(event_type))


def test_the_doc_lists_every_type():
    text = DOC.read_text()
    listed = set(re.findall(r"^\| `([a-z_.]+)` \|", text, flags=re.M))
    assert listed == set(EVENT_TYPES)


def test_the_receiver_in_the_doc_checks_the_signature():
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    namespace: dict = {"__name__": "webhooks_doc"}
    exec(compile(code, str(DOC), "exec"), namespace)
    verify = namespace["verify_signature"]
    body = b'{"id":"1","type":"margin.warning"}'
    header = sign("s3cret", body, timestamp=1_800_000_000)
    assert verify("s3cret", body, header, now=1_800_000_010)
    assert not verify("s3cret", body + b" ", header, now=1_800_000_010)  # the body changed
    assert not verify("other", body, header, now=1_800_000_010)  # another secret
    assert not verify("s3cret", body, header, now=1_800_000_400)  # too old: a replay
    assert not verify("s3cret", body, "v1=abc", now=1_800_000_010)  # no timestamp
