from django.db import models


class InstrumentKind(models.TextChoices):
    CASH = "cash", "Cash"
    CRYPTO = "crypto", "Crypto"
    SECURITY = "security", "Security"


class AccountKind(models.TextChoices):
    # A client's own accounts.
    COLLATERAL = "collateral", "Pledged collateral"
    CUSTODY = "custody", "Free custody holdings"
    LOAN_PRINCIPAL = "loan_principal", "Loan principal"
    INTEREST_RECEIVABLE = "interest_receivable", "Accrued interest"
    FEES_RECEIVABLE = "fees_receivable", "Unpaid fees"
    # The broker's own accounts.
    CUSTODY_CLEARING = "custody_clearing", "Custody clearing (assets in and out)"
    CASH_SETTLEMENT = "cash_settlement", "Cash settlement (cash paid out and received)"
    INTEREST_INCOME = "interest_income", "Interest income"
    FEE_INCOME = "fee_income", "Fee income"
    MARKET = "market", "Market (sales of collateral)"
    SALE_COSTS = "sale_costs", "Sale costs (venue fees)"
    FX_MARKET = "fx_market", "FX conversions (sale proceeds into HKD)"


# Accounts whose balance is a holding: they can never go below zero.
NON_NEGATIVE_KINDS = frozenset({AccountKind.COLLATERAL, AccountKind.CUSTODY})
CLIENT_KINDS = frozenset(
    {
        AccountKind.COLLATERAL,
        AccountKind.CUSTODY,
        AccountKind.LOAN_PRINCIPAL,
        AccountKind.INTEREST_RECEIVABLE,
        AccountKind.FEES_RECEIVABLE,
    }
)


class TransactionKind(models.TextChoices):
    DEPOSIT = "deposit", "Collateral deposit"
    WITHDRAWAL = "withdrawal", "Collateral withdrawal"
    CUSTODY_IN = "custody_in", "Custody holding received"
    CUSTODY_OUT = "custody_out", "Custody holding released"
    TOP_UP = "top_up", "Automatic top-up"
    DRAWDOWN = "drawdown", "Drawdown"
    REPAYMENT = "repayment", "Repayment"
    INTEREST = "interest", "Interest accrual"
    FEE = "fee", "Fee"
    SALE = "sale", "Forced sale"
    REVERSAL = "reversal", "Reversal"
