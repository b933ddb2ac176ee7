"""Every event type the platform records, with what it means and the JSON schema of its ``data`` (the event's
payload): the webhooks' contract, published in the OpenAPI document (``webhooks``) and in docs/webhooks.md.

``events_record`` refuses a type that is not registered here, so a new event cannot reach the broker's
systems undocumented: register it here (and describe its data) in the change that adds it. The margin-call
ladder writes its events in SQL (``financing/margin_calls/batch.sql``); the types it uses are listed in
``financing.margin_calls.batch.EVENT_TYPES`` and checked against this registry by the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The statuses of margin calls and forced sales, as the events name them. Written out here because
# notifications sits below financing in the layers; tests/notifications/test_event_types.py checks them
# against financing.enums.
MARGIN_CALL_STATUSES = ["issued", "cured", "escalated", "forced_sale"]
FORCED_SALE_STATUSES = [
    "planned",
    "awaiting_approval",
    "submitted",
    "partially_filled",
    "filled",
    "paused",
    "failed",
    "cancelled",
]


@dataclass(frozen=True)
class EventType:
    key: str
    when: str  # in words: when it is sent
    data: dict[str, Any]  # JSON schema of the payload (``data`` in a webhook)
    webhooks: bool = True  # False: staff e-mail only, never sent to an endpoint
    client: bool = True  # whether the client is told (e-mail), as far as the type decides it
    examples: list[dict[str, Any]] = field(default_factory=list)


# --- pieces of schemas ---

DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "description": "an exact decimal"}
AMOUNT = {**DECIMAL, "description": "HKD, an exact decimal"}
RATIO = {
    "type": ["string", "null"],
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "description": "debt / margin value as a fraction (0.85 = 85%); null means infinite",
}
TIME = {"type": "string", "format": "date-time"}
FACILITY = {"type": "string", "description": "the facility's reference, e.g. F000002"}
ID = {"type": "integer"}


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object with these properties (all of them required unless ``required`` says otherwise); more may be
    added later, so a receiver must ignore properties it does not know."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": True,
    }


MARGIN_CALL = {
    "margin_call": ID,
    "facility": FACILITY,
    "status": {"type": "string", "enum": MARGIN_CALL_STATUSES},
    "margin_ratio_at_issue": RATIO,
    "debt_at_issue": AMOUNT,
    "margin_value_at_issue": {**AMOUNT, "description": "HKD; absent from calls issued by the sweep"},
    "repayment_due": {**AMOUNT, "description": "a repayment of this much brings the ratio to target"},
    "top_up_due": {**AMOUNT, "description": "or a cash top-up of this much"},
    "deadline": TIME,
}
MARGIN_CALL_REQUIRED = ["margin_call", "facility", "status", "repayment_due", "top_up_due", "deadline"]
NOTICE = obj(
    {
        "facility": FACILITY,
        "margin_ratio": RATIO,
        "margin_value": AMOUNT,
        "debt": AMOUNT,
        "status": {
            "type": "string",
            "description": "the margin status: ok, warning, margin_call, forced_sale",
        },
    }
)
SALE = {
    "forced_sale": ID,
    "facility": FACILITY,
    "status": {"type": "string", "enum": FORCED_SALE_STATUSES},
}
INSTRUCTION = obj(
    {
        "standing_top_up_instruction": ID,
        "client": {"type": "string", "description": "the client's reference"},
        "status": {"type": "string"},
        "trigger": {"type": "string", "enum": ["margin_call", "warning"]},
        "asset_order": {"type": "array", "items": {"type": "string"}},
    },
    required=["standing_top_up_instruction", "client", "status", "trigger"],
)
TOP_UP = obj(
    {
        "automatic_top_up": ID,
        "facility": FACILITY,
        "margin_call": {"type": ["integer", "null"]},
        "trigger": {"type": "string"},
        "outcome": {"type": "string"},
        "transfers": {
            "type": "array",
            "items": obj({"asset": {"type": "string"}, "quantity": DECIMAL, "market_value": AMOUNT}),
        },
        "margin_ratio_before": RATIO,
        "margin_ratio_after": RATIO,
        "still_due": obj({"repayment": AMOUNT, "cash_top_up": AMOUNT}),
        "skipped": {"type": "array", "items": {"type": "object"}},
        "transaction": {"type": ["integer", "null"]},
    },
    required=["automatic_top_up", "facility", "outcome", "transfers"],
)
SWEEP_HEALTH = obj(
    {
        "last_finished_at": {"type": ["string", "null"], "format": "date-time"},
        "interval_seconds": ID,
        "allowed_seconds": ID,
        "late_by_seconds": {"type": ["integer", "null"]},
    },
    required=["interval_seconds", "allowed_seconds"],
)

CALL_MOVES = {
    "cured": "a margin call was cured: the ratio is back at or below the policy's target",
    "escalated": "a margin call passed its deadline uncured",
    "forced_sale": "a margin call was handed to a forced sale",
}
SALE_MOVES = {
    "planned": "a forced sale is planned again (after a pause)",
    "awaiting_approval": "a forced sale waits for a member of staff to approve it",
    "submitted": "a forced sale's orders were submitted",
    "partially_filled": "a forced sale is partly filled",
    "filled": "a forced sale is filled",
    "paused": "a forced sale was paused (kill switch, stale prices, staff, …); `reason` says why",
    "failed": "a forced sale failed",
    "cancelled": "a forced sale was cancelled",
}

_TYPES: list[EventType] = [
    EventType("margin.warning", "a facility's margin ratio reached the warning level", NOTICE),
    EventType("margin.restored", "a facility's margin ratio is back below the warning level", NOTICE),
    EventType(
        "margin_call.issued",
        "a margin call was issued: what cures it (a repayment or a cash top-up) and by when",
        obj(MARGIN_CALL, required=MARGIN_CALL_REQUIRED),
    ),
    EventType(
        "margin_call.updated",
        "a top-up or a repayment lowered what an open call still needs",
        obj(
            {**MARGIN_CALL, "cause": {"type": "string"}, "margin_ratio": RATIO},
            required=[*MARGIN_CALL_REQUIRED, "cause"],
        ),
    ),
    *(
        EventType(
            f"margin_call.{status}",
            when,
            obj({**MARGIN_CALL, "reason": {"type": "string"}}, required=[*MARGIN_CALL_REQUIRED, "reason"]),
        )
        for status, when in CALL_MOVES.items()
    ),
    EventType(
        "forced_sale.requested",
        "a forced sale was requested (the call passed its deadline, or the ratio passed the forced-sale level)",
        obj(
            {
                "forced_sale": ID,
                "facility": FACILITY,
                "trigger": {"type": "string"},
                "margin_ratio": RATIO,
                "margin_call": {"type": ["integer", "null"]},
            },
            required=["forced_sale", "facility", "trigger"],
        ),
    ),
    *(
        EventType(
            f"forced_sale.{status}",
            when,
            obj(
                {
                    **SALE,
                    "reason": {"type": "string"},
                    "orders": {
                        "type": "array",
                        "items": obj(
                            {
                                "client_order_id": {"type": "string"},
                                "asset": {"type": "string"},
                                "quantity": DECIMAL,
                                "limit_price": {"type": ["string", "null"]},
                            }
                        ),
                    },
                },
                required=list(SALE),
            ),
        )
        for status, when in SALE_MOVES.items()
    ),
    EventType(
        "forced_sale.shortfall",
        "a forced sale sold the whole pool and debt remains unsecured",
        obj({**SALE, "shortfall": AMOUNT}),
    ),
    EventType(
        "forced_sale.order",
        "a securities sell order for the broker's order system to place (webhooks only, not the client)",
        obj(
            {
                **SALE,
                "client_order_id": {"type": "string"},
                "asset": {"type": "string"},
                "side": {"type": "string", "enum": ["sell"]},
                "quantity": DECIMAL,
                "limit_price": {"type": ["string", "null"]},
                "currency": {"type": "string"},
            },
            required=[*SALE, "client_order_id", "asset", "side", "quantity"],
        ),
        client=False,
    ),
    EventType(
        "forced_sale.order_cancel",
        "cancel a securities sell order sent before (webhooks only, not the client)",
        obj({**SALE, "client_order_id": {"type": "string"}}),
        client=False,
    ),
    EventType(
        "forced_sale.fill",
        "a fill of a forced sale was booked: what was sold, for how much, and what it repaid",
        obj(
            {
                **SALE,
                "order": {"type": "string", "description": "the order's client_order_id"},
                "asset": {"type": "string"},
                "quantity": DECIMAL,
                "price": DECIMAL,
                "fee": DECIMAL,
                "proceeds": AMOUNT,
                "repaid": AMOUNT,
            },
            required=[*SALE, "order", "asset", "quantity", "price"],
        ),
    ),
    EventType(
        "collateral.automatic_top_up_run",
        "an automatic top-up moved free custody holdings into the pool (one ledger transaction)",
        TOP_UP,
    ),
    EventType(
        "collateral.auto_top_up_not_possible",
        "an automatic top-up could move nothing, and why (`skipped`)",
        TOP_UP,
    ),
    EventType("standing_top_up.requested", "a standing top-up instruction was asked for", INSTRUCTION),
    EventType("standing_top_up.activated", "a standing top-up instruction was signed off", INSTRUCTION),
    EventType("standing_top_up.revoked", "a standing top-up instruction was revoked", INSTRUCTION),
    EventType(
        "kill_switch.engaged",
        "the forced-sale kill switch was engaged: no sale sends orders",
        obj({"reason": {"type": "string"}}),
        client=False,
    ),
    EventType(
        "kill_switch.lifted",
        "the forced-sale kill switch was lifted (four-eyes)",
        obj({"approval_request": ID}),
        client=False,
    ),
    EventType(
        "monitoring.sweep_overdue",
        "the margin sweep has not finished within its allowed time",
        SWEEP_HEALTH,
        client=False,
    ),
    EventType(
        "monitoring.sweep_resumed",
        "the margin sweep is running again",
        SWEEP_HEALTH,
        client=False,
    ),
    EventType(
        "report.daily_margin",
        "the daily margin financing report was made (oversight/reports.py)",
        obj(
            {
                "day": {"type": "string", "format": "date"},
                "report": ID,
                "total_lending": {"type": ["string", "number", "object", "null"]},
                "lending_share_of_cap": {"type": ["string", "number", "object", "null"]},
                "open_calls": {"type": ["integer", "string", "null"]},
                "shortfall": {"type": ["string", "number", "object", "null"]},
                "capital_view_deficiency": {"type": ["string", "number", "object", "null"]},
                "console": {"type": "string", "description": "the report's page in the staff console"},
            },
            required=["day", "report"],
        ),
        webhooks=False,
        client=False,
    ),
    EventType(
        "alerts.digest",
        "staff e-mail only: one digest instead of many alerts from one batch",
        obj(
            {
                "alerts": ID,
                "by_type": {"type": "object", "additionalProperties": {"type": "integer"}},
                "first": {"type": "array", "items": {"type": "string"}},
            }
        ),
        webhooks=False,
        client=False,
    ),
]

EVENT_TYPES: dict[str, EventType] = {}
for _type in _TYPES:
    if _type.key in EVENT_TYPES:
        raise RuntimeError(f"event type {_type.key!r} is registered twice")
    EVENT_TYPES[_type.key] = _type


def event_type_register(event_type: EventType) -> EventType:
    """For an app that adds an event type of its own at import."""
    existing = EVENT_TYPES.get(event_type.key)
    if existing is not None and existing != event_type:
        raise RuntimeError(f"event type {event_type.key!r} is registered twice")
    EVENT_TYPES[event_type.key] = event_type
    return event_type


def is_registered(key: str) -> bool:
    return key in EVENT_TYPES


def webhook_schema(event_type: EventType) -> dict[str, Any]:
    """The JSON schema of the whole webhook body for one type: the envelope, with ``data`` as the type's."""
    return {
        "type": "object",
        "properties": {
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "the event's id (UUIDv7); de-duplicate on it",
            },
            "type": {"type": "string", "enum": [event_type.key]},
            "occurred_at": TIME,
            "summary": {"type": "string", "description": "what happened, in words (at most 300 characters)"},
            "client": {"type": ["string", "null"], "description": "the client's reference"},
            "subject": {
                "type": ["object", "null"],
                "properties": {"type": {"type": "string"}, "id": {"type": "string"}},
                "required": ["type", "id"],
            },
            "data": event_type.data,
        },
        "required": ["id", "type", "occurred_at", "summary", "client", "subject", "data"],
        "additionalProperties": False,
    }
