from core.exceptions import Conflict, DomainError, PermissionRefused


class FourEyesViolation(PermissionRefused):
    code = "four_eyes"


class FourEyesRequired(PermissionRefused):
    """A change made only through a four-eyes approval request, asked for directly."""

    code = "four_eyes_required"


class DuplicatePendingRequest(Conflict):
    code = "duplicate_pending_request"


class NotEligible(DomainError):
    code = "not_eligible"
    api_status = 422
