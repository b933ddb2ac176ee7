"""Interest: base rates, and ACT/365 accrual day by day on the principal outstanding at each day's end."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from djmoney.money import Money

from accounts.audit import Actor, audit_event_record
from core.calendar import HONG_KONG
from core.exceptions import InvalidInput
from core.locks import lock_one
from core.money import CENT, HKD, ZERO
from core.parsing import parse_amount
from financing.calculations import interest_day_by_day
from financing.enums import (
    FacilityStatus,
    RateKind,
)
from financing.models import (
    BaseRate,
    Facility,
    InterestAccrual,
)
from financing.selectors import (
    facility_debt,
)
from ledger.enums import AccountKind, TransactionKind
from ledger.models import Leg
from ledger.services import LegSpec, firm_account, transaction_post


@transaction.atomic
def base_rate_record(
    *, name: str, rate: Any, effective_on: datetime.date, actor: Actor, source: str = ""
) -> BaseRate:
    value = parse_amount(rate, field="rate", decimals=8)
    if BaseRate.objects.filter(name=name, effective_on=effective_on).exists():
        raise InvalidInput(f"{name} already has a rate for {effective_on}.", code="duplicate_base_rate")
    record = BaseRate.objects.create(name=name, rate=value, effective_on=effective_on, source=source)
    audit_event_record(actor=actor, action="base_rate.recorded", target=record, after={"rate": str(value)})
    return record


def annual_rate_on(facility: Facility, day: datetime.date) -> Decimal:
    if facility.rate_kind == RateKind.FIXED:
        return facility.fixed_rate
    base = (
        BaseRate.objects.filter(name=facility.base_rate_name, effective_on__lte=day)
        .order_by("-effective_on")
        .first()
    )
    if base is None:
        raise InvalidInput(
            f"There is no {facility.base_rate_name} rate on or before {day} for {facility.reference}.",
            code="base_rate_missing",
        )
    return base.rate + facility.spread


def _end_of(day: datetime.date) -> datetime.datetime:
    """When a Hong Kong calendar day ends."""
    return datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min, tzinfo=HONG_KONG)


def _principal_at_end_of(facility: Facility, days: list[datetime.date]) -> list[Decimal]:
    """The principal outstanding at the end of each of ``days``, from the ledger: what the principal account
    holds now, less what was posted to it after the day ended (one query, for a weekend or a holiday's run
    of days as for one)."""
    now = facility_debt(facility).principal
    later = list(
        Leg.objects.filter(
            account_id=facility.principal_account_id,
            instrument_id=HKD,
            transaction__posted_at__gte=_end_of(days[0]),
        ).values_list("transaction__posted_at", "amount")
    )
    return [
        (now - sum((amount for at, amount in later if at >= _end_of(day)), ZERO)).quantize(CENT)
        for day in days
    ]


@transaction.atomic
def interest_accrue(*, facility: Facility, accrual_date: datetime.date, actor: Actor) -> InterestAccrual:
    """Accrue ACT/365 interest for the calendar days since the previous accrual (or since the facility
    opened) up to and including ``accrual_date``, day by day: each day on the principal outstanding at its
    end (Hong Kong time) and at the rate of that day, so a drawdown or a repayment on a weekend, or a new
    base rate, counts from its own day. Idempotent: a second run for the same date returns the first
    accrual."""
    facility = lock_one(Facility, facility.pk)
    existing = InterestAccrual.objects.filter(facility=facility, accrual_date=accrual_date).first()
    if existing is not None:
        return existing
    previous = InterestAccrual.objects.filter(facility=facility).order_by("-accrual_date").first()
    if previous is not None and previous.accrual_date > accrual_date:
        raise InvalidInput(
            f"{facility.reference} has already accrued to {previous.accrual_date}; {accrual_date} is earlier.",
            code="accrual_out_of_order",
        )
    if accrual_date < facility.opened_on:
        raise InvalidInput(
            f"{facility.reference} opened on {facility.opened_on}; there is no interest to accrue to {accrual_date}.",
            code="accrual_before_opening",
        )
    start = previous.accrual_date if previous else facility.opened_on - datetime.timedelta(days=1)
    days = (accrual_date - start).days
    each_day = [start + datetime.timedelta(days=n) for n in range(1, days + 1)]
    principals = _principal_at_end_of(facility, each_day)
    rates = [annual_rate_on(facility, day) for day in each_day]
    amount = interest_day_by_day([(p, r) for p, r in zip(principals, rates, strict=True) if p > 0])
    principal, rate = principals[-1], rates[-1]
    txn = None
    if amount > 0:
        txn = transaction_post(
            kind=TransactionKind.INTEREST,
            legs=[
                LegSpec(facility.interest_account, HKD, amount),
                LegSpec(firm_account(AccountKind.INTEREST_INCOME), HKD, -amount),
            ],
            memo=f"Interest on {facility.reference}: {days} day(s) to {accrual_date} at "
            + " to ".join(dict.fromkeys(f"{r * 100:.4f}%" for r in (min(rates), max(rates)))),
            actor=actor,
            idempotency_key=f"interest:{facility.pk}:{accrual_date.isoformat()}",
        )
    accrual = InterestAccrual.objects.create(
        facility=facility,
        accrual_date=accrual_date,
        days=days,
        principal=Money(principal, HKD),
        annual_rate=rate,
        amount=Money(amount, HKD),
        transaction=txn,
        daily=[
            {"date": day.isoformat(), "principal": str(p), "rate": str(r)}
            for day, p, r in zip(each_day, principals, rates, strict=True)
        ],
    )
    audit_event_record(
        actor=actor,
        action="interest.accrued",
        target=facility,
        after={
            "date": accrual_date,
            "days": days,
            "principal": str(principal),
            "rate": str(rate),
            "amount": str(amount),
            "daily": accrual.daily,
        },
    )
    return accrual


def interest_accrue_all(*, accrual_date: datetime.date, actor: Actor) -> int:
    """Accrue every open facility, each in its own transaction, so one failure does not stop the rest."""
    count = 0
    for facility in Facility.objects.exclude(status=FacilityStatus.CLOSED).order_by("pk"):
        interest_accrue(facility=facility, accrual_date=accrual_date, actor=actor)
        count += 1
    return count
