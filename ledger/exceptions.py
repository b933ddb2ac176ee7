from core.exceptions import DomainError


class UnbalancedTransaction(DomainError):
    code = "unbalanced_transaction"


class InsufficientHoldings(DomainError):
    code = "insufficient_holdings"
    api_status = 422


class AlreadyReversed(DomainError):
    code = "already_reversed"
    api_status = 409
