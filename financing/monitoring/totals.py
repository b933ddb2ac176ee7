"""The firm's totals after each sweep (``FirmTotals``): facilities by margin status, the outstanding principal
and the largest loan, written in the sweep's transaction so that the staff console reads one row instead of
adding up the book. A full sweep counts the margin states afresh (and so repairs anything a bug could have
left); every other sweep adds to the previous row's tally what it changed — the statuses it moved and the
principal it read again — and sets the closed facilities apart (docs/monitoring.md, "The firm's totals")."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from django.db.models import Count, DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce

from core.money import ZERO
from financing.enums import MarginStatus, SweepScope
from financing.models import FirmTotals, MarginPolicy, MarginState, SweepRun
from financing.selectors import default_policy

# The staff console's at-risk list: every facility at warning or worse, and those within this much of their
# policy's warning level (a margin ratio 0.10 below it).
AT_RISK_STATUSES = (MarginStatus.WARNING, MarginStatus.MARGIN_CALL, MarginStatus.FORCED_SALE)
NEAR_WARNING = Decimal("0.10")


def on_the_at_risk_list(states):
    """``states`` (margin states) narrowed to those on the at-risk list, each annotated with its policy's
    warning and margin-call levels (``warning_at``, ``call_at``)."""
    default = default_policy()
    ratio = DecimalField(max_digits=30, decimal_places=12)
    states = states.annotate(
        warning_at=Coalesce(F("policy__warning"), Value(default.warning), output_field=ratio),
        call_at=Coalesce(F("policy__margin_call"), Value(default.margin_call), output_field=ratio),
    )
    return states.filter(
        Q(status__in=AT_RISK_STATUSES)
        | Q(status=MarginStatus.OK, margin_ratio__gte=F("warning_at") - Value(NEAR_WARNING))
    )


def _by_status(states) -> dict[str, int]:
    counted = dict(states.values_list("status").annotate(n=Count("pk")).order_by())
    return {status.value: counted.get(status.value, 0) for status in MarginStatus}


def _principal(states) -> Decimal:
    return states.aggregate(total=Sum("principal"))["total"] or ZERO


def _closed() -> tuple[dict[str, int], Decimal, int]:
    """The closed facilities' states by status, their principal, and how many of them the at-risk list's
    rule would take: one read of the few closed states by their partial index (``margin_state_closed_idx``),
    the rule applied here (``on_the_at_risk_list`` joined in would read every state)."""
    default = default_policy()
    warnings = dict(MarginPolicy.objects.values_list("pk", "warning"))
    by_status = dict.fromkeys(MarginStatus.values, 0)
    principal, listed = ZERO, 0
    for status, amount, ratio, policy_id in MarginState.objects.filter(open=False).values_list(
        "status", "principal", "margin_ratio", "policy_id"
    ):
        by_status[status] += 1
        principal += amount
        near = status == MarginStatus.OK and ratio is not None
        near = near and ratio >= warnings.get(policy_id, default.warning) - NEAR_WARNING
        listed += status in AT_RISK_STATUSES or near
    return by_status, principal, listed


def firm_totals_record(
    run: SweepRun,
    *,
    status_changes: dict[str, int] | None = None,
    principal_change: Decimal | None = None,
    listed_change: int | None = None,
) -> FirmTotals:
    """Write ``run``'s totals, inside the sweep's transaction and lock (so no other sweep writes states or
    totals meanwhile). ``status_changes`` (status → states gained, negative for lost), ``principal_change`` and
    ``listed_change`` (states that came onto the at-risk list less those that left it) are what the run
    changed; without them, or after a full sweep, or with no earlier totals, the states are counted afresh."""
    previous = FirmTotals.objects.order_by("-pk").first()
    recount = (
        run.scope == SweepScope.ALL
        or previous is None
        or previous.tally_listed is None
        or status_changes is None
        or listed_change is None
    )
    if recount:
        tally = _by_status(MarginState.objects.all())
        tally_principal = _principal(MarginState.objects.all())
        tally_listed = on_the_at_risk_list(MarginState.objects.all()).count()
    else:
        counted = Counter(previous.tally_by_status)
        counted.update(status_changes)
        tally = {status.value: counted.get(status.value, 0) for status in MarginStatus}
        tally_principal = previous.tally_principal + (principal_change or ZERO)
        tally_listed = previous.tally_listed + listed_change
    closed, closed_principal, closed_listed = _closed()
    by_status = {status: tally[status] - closed[status] for status in tally}
    largest = (
        MarginState.objects.filter(open=True, principal__gt=0)
        .order_by("-principal", "facility_id")
        .values_list("facility_id", "principal")
        .first()
    )
    return FirmTotals.objects.create(
        run=run,
        recounted=recount,
        tally_by_status=tally,
        tally_principal=tally_principal,
        by_status=by_status,
        facilities_open=sum(by_status.values()),
        lending=tally_principal - closed_principal,
        largest_facility_id=largest[0] if largest else None,
        largest_loan=largest[1] if largest else None,
        tally_listed=tally_listed,
        listed=tally_listed - closed_listed,
    )
