"""Domain errors. Every refusal the business makes is one of these: a machine-readable ``code`` and a
message in words a credit officer understands. The admin shows the message; the API maps the code to a
4xx response (``api_status``)."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"
    api_status = 400

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}

    def __str__(self) -> str:
        return self.message


class InvalidInput(DomainError):
    code = "invalid"


class NotFound(DomainError):
    code = "not_found"
    api_status = 404


class PermissionRefused(DomainError):
    code = "permission_denied"
    api_status = 403


class InvalidTransition(DomainError):
    code = "invalid_transition"
    api_status = 409


class Conflict(DomainError):
    code = "conflict"
    api_status = 409
