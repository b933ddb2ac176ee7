from core.exceptions import Conflict, DomainError, PermissionRefused


class FourEyesViolation(PermissionRefused):
    code = "four_eyes"


class DuplicatePendingRequest(Conflict):
    code = "duplicate_pending_request"


class NotEligible(DomainError):
    code = "not_eligible"
    api_status = 422
