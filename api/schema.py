"""The OpenAPI document: the API-key security scheme, the one error shape on every operation, and the
``Idempotency-Key`` header on every POST."""

from __future__ import annotations

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from notifications.event_types import EVENT_TYPES, webhook_schema

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error has this shape: a stable code, the reason in words, and specifics.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "facility_limit_exceeded"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
            },
            "required": ["code", "message", "details"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}

ERRORS_ANY = {
    "400": "Invalid request (a field, a filter or the body); `details` names the fields",
    "401": "No credentials, or an invalid or revoked API key",
    "403": "The API key lacks the scope, the user the permission, or a staff session its second factor",
    "404": "No such record, or not yours to see",
    "405": "Method not allowed",
    "406": "Only JSON is served",
    "429": "Too many requests for this credential; see Retry-After",
}
ERRORS_WRITE = {
    "409": "Conflict: an Idempotency-Key reused for a different request, a state that does not allow it",
    "413": "The request body is too large",
    "415": "Send JSON (Content-Type: application/json)",
    "422": "Refused by a business rule (not eligible, over a limit, open margin call, …); nothing was written",
}

IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": (
        "Makes the POST safe to retry: the first response to a key is stored and a retry with the same key "
        "and body gets it again (with `Idempotent-Replayed: true`); the same key with a different body is "
        "409 `idempotency_key_reused`. 1–255 visible ASCII characters; a UUID is a good choice."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mfk_<prefix>_<secret>",
            "description": "An API key made with `manage.py create_api_key` or in the staff admin.",
        }


def add_errors_and_idempotency(result, generator, request, public):
    """drf-spectacular post-processing hook."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "patch", "put", "delete"}:
                continue
            errors = dict(ERRORS_ANY)
            if method != "get":
                errors.update(ERRORS_WRITE)
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(code, {"description": description, "content": error_ref})
            if method == "post":
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in parameters):
                    parameters.append(IDEMPOTENCY_PARAMETER)
                for code, response in responses.items():
                    if code.startswith("2"):
                        response.setdefault("headers", {})["Idempotent-Replayed"] = {
                            "description": "present, `true`, when this is the stored response to an earlier request",
                            "schema": {"type": "string", "enum": ["true"]},
                        }
    return result


class StaffSessionScheme(SessionScheme):
    """The session login, as drf-spectacular describes Django's (staff also verify a second factor)."""

    target_class = "api.authentication.StaffSessionAuthentication"


SIGNATURE_PARAMETERS = [
    {
        "in": "header",
        "name": "X-Margin-Signature",
        "required": True,
        "description": "`t=<unix time>,v1=<hex>`: HMAC-SHA256 with the endpoint's secret over `<t>.<body>`; "
        "recompute it, compare in constant time, refuse a timestamp more than 300 s old (docs/webhooks.md)",
        "schema": {"type": "string", "pattern": "^t=[0-9]+,v1=[0-9a-f]{64}$"},
    },
    {
        "in": "header",
        "name": "X-Margin-Event-Id",
        "required": True,
        "description": "the event's id, the same as `id` in the body: de-duplicate on it",
        "schema": {"type": "string", "format": "uuid"},
    },
    {
        "in": "header",
        "name": "X-Margin-Event-Type",
        "required": True,
        "description": "the event's type, the same as `type` in the body",
        "schema": {"type": "string"},
    },
]


def add_webhooks(result, generator, request, public):
    """drf-spectacular post-processing hook: every event type an endpoint can receive, as an OpenAPI 3.1
    webhook (a POST the platform makes), its body's schema from the registry."""
    webhooks = {}
    for key, event_type in sorted(EVENT_TYPES.items()):
        if not event_type.webhooks:
            continue
        webhooks[key] = {
            "post": {
                "operationId": f"webhook_{key.replace('.', '_')}",
                "summary": key,
                "description": event_type.when[0].upper() + event_type.when[1:] + ".",
                "tags": ["webhooks"],
                "parameters": SIGNATURE_PARAMETERS,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": webhook_schema(event_type)}},
                },
                "responses": {
                    "2XX": {"description": "delivered; anything else is retried with exponential backoff"}
                },
            }
        }
    result["webhooks"] = webhooks
    return result
