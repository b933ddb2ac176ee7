"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"`` with the endpoint's secret, sent as
``X-Margin-Signature: t=<timestamp>,v1=<hex digest>`` (the scheme Stripe uses, so receivers know it)."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Margin-Signature"
EVENT_ID_HEADER = "X-Margin-Event-Id"
EVENT_TYPE_HEADER = "X-Margin-Event-Type"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str, body: bytes, header: str, *, tolerance_seconds: int = 300, now: int | None = None
) -> bool:
    """What a receiver does: check the digest and that the timestamp is recent (replay protection)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    now = int(time.time()) if now is None else now
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
