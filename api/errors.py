"""One error shape for every failure the API returns, ``{"error": {"code", "message", "details"}}``: domain
refusals keep their code and status, anything unexpected is a logged 500 (docs/api.md, "Errors")."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from accounts.audit import json_value
from core.exceptions import DomainError
from core.validation import as_invalid_input

logger = logging.getLogger("api")


def error_body(code: str, message: str, details: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "details": json_value(details or {})}}


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    """DRF's nested field errors as ``field: message`` lines (``prices[2].price: …``)."""
    if isinstance(detail, dict):
        lines = []
        for key, value in detail.items():
            if isinstance(key, int):  # a ListField's errors are keyed by the item's index
                path = f"{prefix}[{key}]"
            else:
                name = "" if key in ("non_field_errors", "__all__") else str(key)
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            lines += _flatten(value, path)
        return lines
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            text = " ".join(str(item) for item in detail)
            return [f"{prefix}: {text}" if prefix else text]
        lines = []
        for index, value in enumerate(detail):
            if value:
                lines += _flatten(value, f"{prefix}[{index}]")
        return lines
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_plain(item) for item in detail]
    return str(detail)


def _drf_code(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def exception_handler(exc: Exception, context: dict) -> Response:
    if isinstance(exc, DjangoValidationError):
        exc = as_invalid_input(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found: there is no such record, or it is not yours to see.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )

    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.api_status)

    if isinstance(exc, exceptions.ValidationError):
        lines = _flatten(exc.detail)
        message = "The request is not valid: " + "; ".join(lines) if lines else "The request is not valid."
        details = _plain(exc.detail)
        if not isinstance(details, dict):
            details = {"non_field_errors": details if isinstance(details, list) else [details]}
        return Response(error_body("invalid", message, details), status=exc.status_code)

    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        details: dict = {}
        message = str(exc.detail)
        if isinstance(exc, exceptions.Throttled):
            headers["Retry-After"] = str(int(exc.wait or 1))
            details = {"retry_after_seconds": int(exc.wait or 1)}
            message = f"Too many requests for this credential; retry in {int(exc.wait or 1)} s."
        elif isinstance(exc, exceptions.NotAuthenticated):
            message = "Authentication needed: send `Authorization: Bearer <API key>` or log in."
        return Response(error_body(_drf_code(exc), message, details), status=exc.status_code, headers=headers)

    logger.exception("Unexpected error answering %s", context.get("request"))
    return Response(
        error_body("server_error", "Something went wrong on our side; it has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
