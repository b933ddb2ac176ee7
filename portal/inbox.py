"""The client's notifications inbox: their client's events, and which of them this user has read."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _

from notifications.models import Event
from portal.models import NotificationRead

TYPE_WORDS = {
    "margin.warning": _("Warning"),
    "margin.restored": _("Back within limits"),
    "margin_call.issued": _("Margin call"),
    "margin_call.updated": _("Margin call updated"),
    "margin_call.cured": _("Margin call cured"),
    "margin_call.escalated": _("Margin call escalated"),
    "forced_sale.requested": _("Forced sale"),
    "forced_sale.planned": _("Forced sale planned"),
    "forced_sale.shortfall": _("Shortfall after a forced sale"),
    "collateral.automatic_top_up_run": _("Automatic top-up"),
    "collateral.auto_top_up_not_possible": _("Automatic top-up not possible"),
    "standing_top_up.requested": _("Standing instruction asked for"),
    "standing_top_up.activated": _("Standing instruction active"),
    "standing_top_up.revoked": _("Standing instruction stopped"),
}


def _read_by(user):
    return Exists(NotificationRead.objects.filter(user=user, event=OuterRef("pk")))


def events_of(user, *, only_unread: bool = False):
    rows = (
        Event.objects.filter(client_id=user.client_id).annotate(read=_read_by(user)).order_by("-occurred_at")
    )
    return rows.filter(read=False) if only_unread else rows


def unread_count(user) -> int:
    return events_of(user, only_unread=True).count()


def event_of(user, event_id) -> Event:
    return get_object_or_404(Event, pk=event_id, client_id=user.client_id)


@dataclass(frozen=True)
class Line:
    event: Event
    read: bool

    @property
    def type_words(self) -> str:
        return str(TYPE_WORDS.get(self.event.type, self.event.type))


def lines(user, page) -> list[Line]:
    return [Line(event, event.read) for event in page]


def mark(user, event: Event, *, read: bool) -> None:
    if read:
        NotificationRead.objects.get_or_create(user=user, event=event)
    else:
        NotificationRead.objects.filter(user=user, event=event).delete()


def mark_all_read(user) -> int:
    unread = list(events_of(user, only_unread=True).values_list("pk", flat=True))
    NotificationRead.objects.bulk_create(
        [NotificationRead(user=user, event_id=pk) for pk in unread], ignore_conflicts=True
    )
    return len(unread)
