"""Every POST runs in one transaction and honours an ``Idempotency-Key``: the first request claims the key
and stores its response, and a retry gets that response again (docs/api.md, "Idempotency")."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from api.exceptions import IdempotencyKeyReused, InvalidIdempotencyKey
from api.models import IdempotencyRecord
from core.db import insert_unless_taken

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces: a UUID fits


class _ErrorResponse(Exception):
    """Carries an error response out of the savepoint so that the work is rolled back."""

    def __init__(self, response: Response):
        self.response = response


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the method, the path and the body. A JSON body is compared by meaning, not layout:
    keys sorted, whitespace ignored (numbers keep their exact spelling)."""
    try:
        parsed = json.loads(
            body, parse_float=lambda text: f"float:{text}", parse_int=lambda text: f"int:{text}"
        )
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON, or nested too deeply: the parser refuses it
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), b"\n", path.encode(), b"\n", canonical):
        digest.update(part)
    return digest.hexdigest()


def _stored_body(response: Response) -> str:
    """The body as JSON text, keys in the order they were sent, so that a replay is the same bytes."""
    if response.data is None:
        return ""
    return JSONRenderer().render(response.data).decode()


def _replay(record: IdempotencyRecord) -> Response:
    data = json.loads(record.response_body) if record.response_body else None
    return Response(data, status=record.status_code, headers={REPLAYED_HEADER: "true"})


def _claim(
    *, credential: str, key: str, method: str, path: str, fingerprint: str
) -> IdempotencyRecord | None:
    """Insert the key's record, or return None when the key is taken. One statement, without a savepoint
    (``INSERT … ON CONFLICT DO NOTHING``): a request holding the same key uncommitted is waited for, as the
    unique index makes any insert wait, and its key is then taken (or free again, if it rolled back)."""
    record = IdempotencyRecord(
        credential=credential, key=key, method=method, path=path[:500], fingerprint=fingerprint
    )
    record.created_at = timezone.now()
    fields = [
        "credential",
        "key",
        "method",
        "path",
        "fingerprint",
        "status_code",
        "response_body",
        "created_at",
    ]
    return record if insert_unless_taken(record, fields, ["credential", "key"]) else None


def run_in_transaction(
    *,
    key: str | None,
    credential: str,
    method: str,
    path: str,
    body: bytes,
    work: Callable[[], Response],
    on_error: Callable[[Exception], Response],
    savepoint: bool = True,
) -> Response:
    """Run ``work`` (the view's handler) in a transaction, honouring the idempotency key if given. The work
    runs in a savepoint, so that a refusal leaves nothing of it behind but the stored response; without one
    (``savepoint=False``) when it is a single service call that rolls itself back on a refusal
    (``ApiViewMixin.self_contained_actions``)."""
    with transaction.atomic():
        record = None
        if key is not None:
            if not KEY_PATTERN.match(key):
                raise InvalidIdempotencyKey(
                    f"The {HEADER} header must be 1 to 255 visible ASCII characters without spaces "
                    "(a UUID is a good choice)."
                )
            fingerprint = request_fingerprint(method, path, body)
            record = _claim(credential=credential, key=key, method=method, path=path, fingerprint=fingerprint)
            if record is None:
                # Another request with this key has committed (we waited for it if it was running).
                existing = IdempotencyRecord.objects.get(credential=credential, key=key)
                if existing.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(
                        f"The {HEADER} {key!r} was already used for a different request "
                        f"({existing.method} {existing.path}); use a new key for a new request.",
                        details={"first_used_at": existing.created_at.isoformat()},
                    )
                return _replay(existing)
        if savepoint:
            try:
                with transaction.atomic():
                    response = work()
                    if response.status_code >= 400:
                        raise _ErrorResponse(response)
            except _ErrorResponse as refused:
                response = refused.response
            except Exception as exc:
                response = on_error(exc)
        else:
            try:
                response = work()
            except Exception as exc:
                response = on_error(exc)
            if transaction.get_rollback() and response.status_code < 500:
                # The work did not roll back what it wrote: the request's transaction can only go whole.
                raise RuntimeError(f"{method} {path}: its work left the transaction to be rolled back")
        if record is not None:
            if response.status_code >= 500:
                transaction.set_rollback(True)
            else:
                record.status_code = response.status_code
                record.response_body = _stored_body(response)
                record.save(update_fields=["status_code", "response_body"])
        return response
