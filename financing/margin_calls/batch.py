"""Calls to issue, sales to request, calls to hand over and notices, collected per facility as plain values
and written together in the caller's transaction: by one statement on PostgreSQL (the records worded by the
database), by Python elsewhere. The two write the same records (the tests run both)."""

from __future__ import annotations

import datetime
import functools
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.utils import timezone

from accounts.audit import (
    Actor,
    actor_label,
    actor_user,
    audit_events_record,
)
from core.calendar import HONG_KONG, cure_deadline
from core.db import DefaultedColumns, bulk_insert_with_pks, fetchone_named, insert_defaults, reserve_pks
from core.sql import sql_compose, sql_file
from core.tasks import task_queue_on_commit
from financing.calculations import MarginFigures, Thresholds
from financing.enums import (
    ForcedSaleStatus,
    ForcedSaleTrigger,
    MarginCallStatus,
)
from financing.margin_calls.records import (
    CALL_EVENT_WORDS,
    CallValues,
    FacilityRef,
    Notice,
    SaleValues,
    forced_sale_requested_records,
    handover_reason,
    margin_call_build,
    margin_call_issued_records,
    margin_call_moved_records,
    margin_call_transition_check,
    notice_event,
)
from financing.models import Facility, ForcedSale, MarginCall, MarginPolicy
from notifications.services import (
    BATCH_DELIVERY_THRESHOLD,
    DIGEST_EXAMPLES,
    events_record,
    fan_out_parameters,
    messages_delivery_queue,
    messages_from_events_sql,
    staff_digest,
)


class CallRow(NamedTuple):
    """A new margin call as ``write_in_python`` inserts it, named by ``MarginCall``'s fields (the rest at
    their defaults: ``issued_at`` now)."""

    facility_id: int
    status: str
    ratio_at_issue: Decimal | None
    debt_at_issue: Decimal
    margin_value_at_issue: Decimal
    repayment_due: Decimal
    top_up_due: Decimal
    deadline: datetime.datetime


class SaleRow(NamedTuple):
    """A new forced sale as ``write_in_python`` inserts it, named by ``ForcedSale``'s fields (the rest at
    their defaults: ``requested_at`` now)."""

    facility_id: int
    margin_call_id: int | None
    trigger: str
    ratio_at_request: Decimal | None


def _call_row(call: CallValues) -> CallRow:
    return CallRow(
        facility_id=call.facility.pk,
        status=call.status,
        ratio_at_issue=call.ratio_at_issue,
        debt_at_issue=call.debt_at_issue,
        margin_value_at_issue=call.margin_value_at_issue,
        repayment_due=call.repayment_due,
        top_up_due=call.top_up_due,
        deadline=call.deadline,
    )


def _sale_row(sale: SaleValues) -> SaleRow:
    return SaleRow(
        facility_id=sale.facility.pk,
        margin_call_id=sale.margin_call.pk if sale.margin_call else None,
        trigger=sale.trigger,
        ratio_at_request=sale.ratio_at_request,
    )


@dataclass
class LadderBatch:
    """Calls to issue, sales to request, calls to hand over, and notices: collected per facility as plain
    values, then written together (``write``) in the caller's transaction. On PostgreSQL one statement words
    and writes them all (``ladder_batch_write``); elsewhere ``write_in_python`` builds the rows here. The
    two write the same records (the tests run both)."""

    actor: Actor
    now: datetime.datetime = field(default_factory=timezone.now)
    new_calls: list[CallValues] = field(default_factory=list)
    new_sales: list[SaleValues] = field(default_factory=list)
    handed_over: list[CallValues] = field(default_factory=list)  # open calls to hand to their new sale
    notices: list[Notice] = field(default_factory=list)
    deadlines: dict[tuple, datetime.datetime] = field(default_factory=dict)  # per cure time and business days

    def issue_call(
        self,
        facility: FacilityRef,
        figures: MarginFigures,
        policy: MarginPolicy,
        *,
        cash_top_up: Decimal | None = None,
    ) -> CallValues:
        """A call to issue; ``cash_top_up``: the exact cash top-up where a concentration cut binds
        (``financing.selectors.cash_top_ups_to_target``)."""
        key = (policy.cure_business_days, policy.cure_time)
        if key not in self.deadlines:  # in UTC, as stored and as a loaded call gives it in its records
            self.deadlines[key] = cure_deadline(self.now, *key).astimezone(datetime.UTC)
        call = margin_call_build(
            facility=facility,
            figures=figures,
            policy=policy,
            deadline=self.deadlines[key],
            cash_top_up=cash_top_up,
        )
        self.new_calls.append(call)
        return call

    def request_sale(
        self,
        facility: FacilityRef,
        figures: MarginFigures,
        trigger: str,
        call: CallValues | None,
        *,
        hand_over: bool = True,
    ) -> SaleValues:
        """A sale to request; ``call`` (open) is handed over to it, or (``hand_over`` false) only linked."""
        sale = SaleValues(None, facility, trigger, figures.margin_ratio, call)
        self.new_sales.append(sale)
        if call is not None and hand_over:
            margin_call_transition_check(call.pk, call.status, MarginCallStatus.FORCED_SALE)
            self.handed_over.append(call)
        return sale

    def warn(self, facility: FacilityRef, figures: MarginFigures, thresholds: Thresholds) -> None:
        self.notices.append(Notice(facility, figures, thresholds))

    def restored(self, facility: FacilityRef, figures: MarginFigures) -> None:
        self.notices.append(Notice(facility, figures))

    @property
    def warned(self) -> list[FacilityRef]:
        return [notice.facility for notice in self.notices if notice.thresholds is not None]

    def write(self) -> int:
        """Write everything collected; returns the actions taken (calls, sales and notices)."""
        if connection.vendor == "postgresql":
            ladder_batch_write(self)
        else:
            self.write_in_python()
        if self.new_sales:  # one message for the batch; each sale has its key once written
            task_queue_on_commit("financing.forced_sales_start", [sale.pk for sale in self.new_sales])
        return len(self.new_calls) + len(self.new_sales) + len(self.notices)

    def handed_statuses(self) -> list[str]:
        """Mark the calls handed over as such (they were written so); returns the statuses they had."""
        before = [call.status for call in self.handed_over]
        for call in self.handed_over:
            call.status = MarginCallStatus.FORCED_SALE
        return before

    def write_in_python(self) -> None:
        """The rows built here, one list per table, and written with COPY (``bulk_insert_rows``)."""
        bulk_insert_with_pks(MarginCall, self.new_calls, _call_row)
        records = [margin_call_issued_records(call, self.actor) for call in self.new_calls]
        bulk_insert_with_pks(ForcedSale, self.new_sales, _sale_row)
        records += [forced_sale_requested_records(sale, self.actor) for sale in self.new_sales]
        sale_of_call = {id(sale.margin_call): sale for sale in self.new_sales if sale.margin_call}
        handed = []
        for call, before in zip(self.handed_over, self.handed_statuses(), strict=True):
            reason = handover_reason(sale_of_call[id(call)])
            records.append(margin_call_moved_records(call, before, reason, self.actor))
            handed.append(
                {"status": call.status, "closed_at": self.now, "close_reason": reason, "id": call.pk}
            )
        if handed:
            with connection.cursor() as cursor:
                cursor.executemany(sql_file(__file__, "batch.sql", "calls_hand_over"), handed)
        audit_events_record([audit for audit, _ in records])
        events_record([*(notice_event(notice) for notice in self.notices), *(event for _, event in records)])


GIVEN_CALL_COLUMNS = ["id", "facility_id", "status", "ratio_at_issue", "debt_at_issue", "margin_value_at_issue",
                      "repayment_due", "top_up_due", "deadline", "closed_at", "close_reason"]  # fmt: skip


GIVEN_SALE_COLUMNS = ["id", "facility_id", "margin_call_id", "trigger", "ratio_at_request"]


def _defaults() -> tuple[DefaultedColumns, DefaultedColumns]:
    """What the ladder statement inserts into the columns its inputs do not give (``insert_defaults``)."""
    return (
        insert_defaults(MarginCall, GIVEN_CALL_COLUMNS, prefix="call_default"),
        insert_defaults(ForcedSale, GIVEN_SALE_COLUMNS, prefix="sale_default"),
    )


@functools.cache
def ladder_statement(inputs: str) -> str:
    """The ladder's statement (``writes``) on ``inputs`` (``given_inputs``, or ``decided_inputs`` of
    ``financing.monitoring.ladder``), rendered once per process; its parameters are ``ladder_parameters``."""
    calls, sales = _defaults()
    return sql_compose(
        sql_file(__file__, "batch.sql", "writes"),
        inputs=inputs,
        call_columns=", ".join(GIVEN_CALL_COLUMNS),
        call_default_columns=calls.columns,
        call_default_values=calls.values,
        sale_columns=", ".join(GIVEN_SALE_COLUMNS),
        sale_default_columns=sales.columns,
        sale_default_values=sales.values,
        messages=messages_from_events_sql("fan_out"),
    )


EVENT_TYPES = ["margin.warning", "margin.restored", "margin_call.issued", "forced_sale.requested",
               f"margin_call.{MarginCallStatus.FORCED_SALE}"]  # fmt: skip


def ladder_parameters(actor: Actor, now: datetime.datetime) -> dict[str, object]:
    """What ``ladder_statement`` needs besides its inputs: the values of the columns it does not give, the
    words and labels it uses, who acts, when, and who is told."""
    user = actor_user(actor)
    content_type = ContentType.objects.get_for_model
    calls, sales = _defaults()
    return {
        **calls.params,
        **sales.params,
        **fan_out_parameters(EVENT_TYPES, staff=True, now=now),
        "now": now,
        "zone": str(HONG_KONG),
        "facility_type": Facility._meta.label_lower,
        "call_type": MarginCall._meta.label_lower,
        "sale_type": ForcedSale._meta.label_lower,
        "call_content_type": content_type(MarginCall, for_concrete_model=False).pk,
        "sale_content_type": content_type(ForcedSale, for_concrete_model=False).pk,
        "issued": MarginCallStatus.ISSUED.value,
        "issued_label": MarginCallStatus.ISSUED.label,
        "handed": MarginCallStatus.FORCED_SALE.value,
        "handed_label": MarginCallStatus.FORCED_SALE.label,
        "handed_words": CALL_EVENT_WORDS[MarginCallStatus.FORCED_SALE],
        "planned_label": ForcedSaleStatus.PLANNED.label,
        "actor_id": user.pk if user is not None else None,
        "actor_label": actor_label(actor),
        "digest_above": settings.STAFF_ALERT_DIGEST_ABOVE,
        "few_messages": BATCH_DELIVERY_THRESHOLD,
        "digest_examples": DIGEST_EXAMPLES,
    }


@dataclass(frozen=True)
class Written:
    """What a ladder statement did: the actions taken (calls, sales and notices), the sales requested, and
    the facilities (and their clients) it issued a call on that is still issued, or warned."""

    actions: int
    sale_ids: list[int]
    called: dict[int, int]
    warned: dict[int, int]


def ladder_statement_run(statement: str, params: dict[str, object]) -> Written:
    """Run a ladder statement in the caller's transaction; queue the messages' delivery for after commit, and
    tell staff in one digest when the batch alerts them too often (as ``events_record`` does)."""
    with connection.cursor() as cursor:
        cursor.execute(sql_file(__file__, "batch.sql", "without_jit"))
        cursor.execute(statement, params)
        result = fetchone_named(cursor)
    if result["message_count"]:
        messages_delivery_queue(result["message_ids"])
    if not result["staff_told_each"]:  # ``alerts``: the type of each
        events_record([staff_digest(Counter(result["alerts"]), result["first_alerts"])])
    return Written(
        actions=result["actions"],
        sale_ids=result["sale_ids"],
        called=dict(result["called"]),
        warned=dict(result["warned"]),
    )


# The batch as the statement's inputs (``given_inputs``): one NamedTuple per relation, whose fields name its
# array parameters (``prefix_field``).


class NoticeInput(NamedTuple):
    facility: int
    reference: str
    client: int
    email: str
    ratio: Decimal | None
    margin_value: Decimal
    debt: Decimal
    status: str
    warning: Decimal | None  # a warning's thresholds (none: back within limits)
    margin_call: Decimal | None


class CallInput(NamedTuple):
    id: int
    facility: int
    reference: str
    client: int
    email: str
    new: bool  # issued by this batch (else open, and handed over)
    before: str  # its status before the batch
    ratio: Decimal | None
    debt: Decimal
    margin_value: Decimal
    repayment: Decimal
    top_up: Decimal
    deadline: datetime.datetime
    sale: int | None  # the sale it is handed to, with the reason, and its place among the batch's hand-overs
    reason: str | None
    handed_ord: int | None


class SaleInput(NamedTuple):
    id: int
    facility: int
    reference: str
    client: int
    email: str
    trigger: str
    trigger_words: str
    ratio: Decimal | None
    call: int | None


def _arrays(prefix: str, row_type: type[tuple], rows: list[tuple]) -> dict[str, list]:
    """Rows of ``row_type`` (a NamedTuple) as one array parameter per field (``prefix_field``)."""
    columns = zip(*rows, strict=True) if rows else [()] * len(row_type._fields)
    return {f"{prefix}_{name}": list(values) for name, values in zip(row_type._fields, columns, strict=True)}


def _notice_input(notice: Notice) -> NoticeInput:
    party, figures, thresholds = notice.facility, notice.figures, notice.thresholds
    return NoticeInput(
        facility=party.pk,
        reference=party.reference,
        client=party.client.pk,
        email=party.client.email,
        ratio=figures.margin_ratio,
        margin_value=figures.margin_value,
        debt=figures.debt,
        status=figures.status,
        warning=thresholds.warning if thresholds else None,
        margin_call=thresholds.margin_call if thresholds else None,
    )


def _call_input(call: CallValues, new: bool, before: str, sale, handed_ord: int | None) -> CallInput:
    """A call's values; ``sale`` (and ``handed_ord``, its place among the batch's hand-overs) when handed over."""
    party = call.facility
    return CallInput(
        id=call.pk,
        facility=party.pk,
        reference=party.reference,
        client=party.client.pk,
        email=party.client.email,
        new=new,
        before=before,
        ratio=call.ratio_at_issue,
        debt=call.debt_at_issue,
        margin_value=call.margin_value_at_issue,
        repayment=call.repayment_due,
        top_up=call.top_up_due,
        deadline=call.deadline,
        sale=sale.pk if sale else None,
        reason=handover_reason(sale) if sale else None,
        handed_ord=handed_ord,
    )


def _sale_input(sale: SaleValues) -> SaleInput:
    party = sale.facility
    return SaleInput(
        id=sale.pk,
        facility=party.pk,
        reference=party.reference,
        client=party.client.pk,
        email=party.client.email,
        trigger=sale.trigger,
        trigger_words=ForcedSaleTrigger(sale.trigger).label.lower(),
        ratio=sale.ratio_at_request,
        call=sale.margin_call.pk if sale.margin_call else None,
    )


def ladder_batch_write(batch: LadderBatch) -> None:
    """Write what ``batch`` collected (calls, sales, hand-overs, notices) in one statement, in the caller's
    transaction."""
    reserve_pks(MarginCall, batch.new_calls)
    reserve_pks(ForcedSale, batch.new_sales)
    sale_of_call = {id(sale.margin_call): sale for sale in batch.new_sales if sale.margin_call}
    befores = batch.handed_statuses()
    handed = {
        id(call): (i, before) for i, (call, before) in enumerate(zip(batch.handed_over, befores, strict=True))
    }
    new = {id(call) for call in batch.new_calls}
    calls = []
    for call in [*batch.new_calls, *(c for c in batch.handed_over if id(c) not in new)]:
        handed_ord, before = handed.get(id(call), (None, MarginCallStatus.ISSUED))
        sale = sale_of_call[id(call)] if handed_ord is not None else None
        calls.append(_call_input(call, id(call) in new, before, sale, handed_ord))
    ladder_statement_run(
        ladder_statement(sql_file(__file__, "batch.sql", "given_inputs")),
        {
            **_arrays("n", NoticeInput, [_notice_input(notice) for notice in batch.notices]),
            **_arrays("c", CallInput, calls),
            **_arrays("s", SaleInput, [_sale_input(sale) for sale in batch.new_sales]),
            **ladder_parameters(batch.actor, batch.now),
        },
    )
