from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Sum

from ledger.models import Account, Balance, Leg


def balance_of(account: Account, instrument: str) -> Decimal:
    row = (
        Balance.objects.filter(account=account, instrument_id=instrument)
        .values_list("amount", flat=True)
        .first()
    )
    return row if row is not None else Decimal(0)


def balances_of(account: Account) -> dict[str, Decimal]:
    """Every non-zero balance of an account, by instrument code."""
    return {
        code: amount
        for code, amount in Balance.objects.filter(account=account).values_list("instrument_id", "amount")
        if amount != 0
    }


def balances_of_accounts(account_ids: list[int]) -> dict[int, dict[str, Decimal]]:
    result: dict[int, dict[str, Decimal]] = defaultdict(dict)
    rows = Balance.objects.filter(account_id__in=account_ids).exclude(amount=0)
    for account_id, code, amount in rows.values_list("account_id", "instrument_id", "amount"):
        result[account_id][code] = amount
    return result


def balances_from_legs(account_ids: list[int] | None = None) -> dict[tuple[int, str], Decimal]:
    """The balances recomputed from the legs themselves: the truth the projection must equal."""
    legs = Leg.objects.all()
    if account_ids is not None:
        legs = legs.filter(account_id__in=account_ids)
    rows = legs.values("account_id", "instrument_id").annotate(total=Sum("amount"))
    return {(row["account_id"], row["instrument_id"]): row["total"] for row in rows if row["total"] != 0}


def balances_projected(account_ids: list[int] | None = None) -> dict[tuple[int, str], Decimal]:
    rows = Balance.objects.exclude(amount=0)
    if account_ids is not None:
        rows = rows.filter(account_id__in=account_ids)
    return {(b.account_id, b.instrument_id): b.amount for b in rows}


def total_by_kind(kind: str, instrument: str) -> Decimal:
    total = Balance.objects.filter(account__kind=kind, instrument_id=instrument).aggregate(
        total=Sum("amount")
    )
    return total["total"] or Decimal(0)
