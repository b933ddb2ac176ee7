"""A facility's activity, newest first: drawdowns, repayments, interest, collateral and custody movements,
margin calls, forced sales and their fills, automatic top-ups. One list for the page and the CSV."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from collateral.enums import CustodyMovementKind, MovementKind
from collateral.models import CollateralMovement, CustodyMovement
from financing.models import (
    AutomaticTopUp,
    Drawdown,
    Facility,
    ForcedSale,
    InterestAccrual,
    MarginCall,
    Repayment,
    SaleFill,
)
from web.formatting import hkd

KINDS = {
    "drawdown": gettext_lazy("Drawdowns"),
    "repayment": gettext_lazy("Repayments"),
    "interest": gettext_lazy("Interest"),
    "collateral": gettext_lazy("Collateral movements"),
    "custody": gettext_lazy("Custody movements"),
    "margin_call": gettext_lazy("Margin calls"),
    "forced_sale": gettext_lazy("Forced sales and fills"),
    "top_up": gettext_lazy("Automatic top-ups"),
}


@dataclass(frozen=True)
class Activity:
    at: datetime.datetime
    kind: str
    description: str
    amount: Decimal | None = None  # HKD, when the line has one: + to the client's debt, − off it
    quantity: str = ""  # an asset movement: "+0.5 BTC"

    @property
    def kind_words(self) -> str:
        return str(KINDS[self.kind])


def _plain(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"


def activity_of(
    facility: Facility,
    *,
    kind: str = "",
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
) -> list[Activity]:
    """Every line of the facility's activity of ``kind`` (all kinds when empty) from ``start`` up to ``end``."""
    kinds = [kind] if kind else list(KINDS)
    lines: list[Activity] = []

    def within(queryset, field: str = "created_at"):
        if start is not None:
            queryset = queryset.filter(**{f"{field}__gte": start})
        if end is not None:
            queryset = queryset.filter(**{f"{field}__lt": end})
        return queryset

    if "drawdown" in kinds:
        for row in within(Drawdown.objects.filter(facility=facility)):
            lines.append(Activity(row.created_at, "drawdown", _("Drawdown"), row.amount.amount))
    if "repayment" in kinds:
        for row in within(Repayment.objects.filter(facility=facility)):
            lines.append(
                Activity(
                    row.created_at,
                    "repayment",
                    _("Repayment: %(fees)s to fees, %(interest)s to interest, %(principal)s to principal")
                    % {
                        "fees": hkd(row.to_fees.amount),
                        "interest": hkd(row.to_interest.amount),
                        "principal": hkd(row.to_principal.amount),
                    },
                    -row.amount.amount,
                )
            )
    if "interest" in kinds:
        for row in within(InterestAccrual.objects.filter(facility=facility)):
            lines.append(
                Activity(
                    row.created_at,
                    "interest",
                    _("Interest for %(days)s day(s) to %(date)s at %(rate)s a year")
                    % {
                        "days": row.days,
                        "date": row.accrual_date.isoformat(),
                        "rate": _rate(row.annual_rate),
                    },
                    row.amount.amount,
                )
            )
    if "collateral" in kinds:
        rows = within(CollateralMovement.objects.filter(pool__client_id=facility.client_id))
        for row in rows:
            deposit = row.kind == MovementKind.DEPOSIT
            lines.append(
                Activity(
                    row.created_at,
                    "collateral",
                    _("Into the pool") if deposit else _("Out of the pool"),
                    quantity=f"{'+' if deposit else '−'}{_plain(row.quantity)} {row.asset_id}",
                )
            )
    if "custody" in kinds:
        for row in within(CustodyMovement.objects.filter(client_id=facility.client_id)):
            received = row.kind == CustodyMovementKind.RECEIVED
            lines.append(
                Activity(
                    row.created_at,
                    "custody",
                    _("Received into free holdings") if received else _("Released from free holdings"),
                    quantity=f"{'+' if received else '−'}{_plain(row.quantity)} {row.asset_id}",
                )
            )
    if "margin_call" in kinds:
        for row in within(MarginCall.objects.filter(facility=facility), "issued_at"):
            lines.append(
                Activity(
                    row.issued_at,
                    "margin_call",
                    _("Margin call issued (%(status)s): repay %(repayment)s or top up %(top_up)s")
                    % {
                        "status": row.get_status_display(),
                        "repayment": hkd(row.repayment_due.amount),
                        "top_up": hkd(row.top_up_due.amount),
                    },
                )
            )
    if "forced_sale" in kinds:
        for row in within(ForcedSale.objects.filter(facility=facility), "requested_at"):
            lines.append(
                Activity(
                    row.requested_at,
                    "forced_sale",
                    _("Forced sale (%(status)s)") % {"status": row.get_status_display()},
                )
            )
        fills = within(SaleFill.objects.filter(order__forced_sale__facility=facility).select_related("order"))
        for row in fills:
            lines.append(
                Activity(
                    row.created_at,
                    "forced_sale",
                    _("Sold at %(price)s %(currency)s")
                    % {"price": row.price, "currency": row.order.price_currency},
                    -row.proceeds,
                    quantity=f"−{_plain(row.quantity)} {row.order.asset_id}",
                )
            )
    if "top_up" in kinds:
        for row in within(AutomaticTopUp.objects.filter(facility=facility).prefetch_related("transfers")):
            moved = ", ".join(f"+{_plain(t.quantity)} {t.asset_id}" for t in row.transfers.all())
            lines.append(
                Activity(
                    row.created_at,
                    "top_up",
                    _("Automatic top-up: %(outcome)s") % {"outcome": row.get_outcome_display()},
                    quantity=moved,
                )
            )
    lines.sort(key=lambda line: line.at, reverse=True)
    return lines


def _rate(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"
