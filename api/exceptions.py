"""Refusals the API itself makes (the domain's own are in each app's ``exceptions.py``)."""

from core.exceptions import Conflict, InvalidInput, PermissionRefused


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class InvalidIdempotencyKey(InvalidInput):
    code = "invalid_idempotency_key"


class StaffSessionRequired(PermissionRefused):
    code = "staff_session_required"


class ExternalReferenceConflict(Conflict):
    code = "external_reference_conflict"
