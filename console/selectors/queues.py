"""The queues staff work from: the four-eyes approvals waiting for the signed-in person (never their own),
the margin calls due by the end of today (Hong Kong time), and the forced sales waiting for approval or
paused."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils import timezone

from accounts.approvals import approval_kind_get
from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest
from core.exceptions import InvalidInput
from financing.enums import OPEN_MARGIN_CALL_STATUSES, ForcedSaleStatus
from financing.models import ForcedSale, MarginCall
from web.formatting import HONG_KONG


@dataclass(frozen=True)
class ApprovalRow:
    request: ApprovalRequest
    kind_label: str
    change: str
    may_decide: bool


@dataclass(frozen=True)
class Queues:
    approvals: list[ApprovalRow]
    decides_any: bool
    calls_due: list[MarginCall]
    due_by: datetime.datetime
    sales_waiting: list[ForcedSale]


def _describe(request: ApprovalRequest) -> tuple[str, str, str]:
    """The kind's label, what it changes in words, and the permission deciding it takes."""
    try:
        kind = approval_kind_get(request.kind)
    except InvalidInput:  # a kind no longer registered: shown, never decided here
        return request.kind, str(request.proposed), ""
    return kind.label, kind.describe(request.proposed), kind.approve_permission


def approvals_waiting_for(user) -> tuple[list[ApprovalRow], bool]:
    """Pending requests the user did not make, oldest first: those they may decide; or, for someone who may
    decide none (compliance), every one of them to read."""
    pending = (
        ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING)
        .exclude(requested_by=user)
        .select_related("requested_by")
        .order_by("requested_at", "pk")
    )
    rows = []
    for request in pending:
        label, change, permission = _describe(request)
        rows.append(ApprovalRow(request, label, change, bool(permission) and user.has_perm(permission)))
    decides_any = any(row.may_decide for row in rows)
    if decides_any:
        rows = [row for row in rows if row.may_decide]
    return rows, decides_any


def end_of_today(now: datetime.datetime) -> datetime.datetime:
    today = now.astimezone(HONG_KONG).date()
    return datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time(0), tzinfo=HONG_KONG)


def queues_for(user, now: datetime.datetime | None = None) -> Queues:
    now = now or timezone.now()
    approvals, decides_any = approvals_waiting_for(user)
    due_by = end_of_today(now)
    calls = list(
        MarginCall.objects.filter(status__in=OPEN_MARGIN_CALL_STATUSES, deadline__lt=due_by)
        .select_related("facility__client")
        .order_by("deadline", "pk")[:200]
    )
    sales = list(
        ForcedSale.objects.filter(status__in=[ForcedSaleStatus.AWAITING_APPROVAL, ForcedSaleStatus.PAUSED])
        .select_related("facility__client")
        .order_by("requested_at", "pk")[:200]
    )
    return Queues(approvals, decides_any, calls, due_by, sales)
