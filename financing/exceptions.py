from core.exceptions import DomainError


class DrawdownRefused(DomainError):
    code = "drawdown_refused"
    api_status = 422


class NotEligible(DrawdownRefused):
    code = "not_eligible"


class FacilityLimitExceeded(DrawdownRefused):
    code = "facility_limit_exceeded"


class CreditLimitExceeded(DrawdownRefused):
    code = "credit_limit_exceeded"


class MaxAdvanceExceeded(DrawdownRefused):
    code = "max_advance_exceeded"


class OpenMarginCall(DrawdownRefused):
    code = "open_margin_call"


class FirmLimitExceeded(DrawdownRefused):
    code = "firm_limit_exceeded"


class ClientConcentrationExceeded(DrawdownRefused):
    code = "client_concentration_exceeded"


class FacilityNotActive(DrawdownRefused):
    code = "facility_not_active"


class RepaymentRefused(DomainError):
    code = "repayment_refused"
    api_status = 422


class WithdrawalRefused(DomainError):
    code = "withdrawal_refused"
    api_status = 422
