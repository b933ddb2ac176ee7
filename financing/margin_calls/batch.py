"""Calls to issue, sales to request, calls to hand over and notices, collected per facility as plain values
and written together in the caller's transaction: by one statement on PostgreSQL (the records worded by the
database), by Python elsewhere. The two write the same records (the tests run both)."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field

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
from core.db import bulk_insert_with_pks, insert_defaults, reserve_pks
from core.tasks import task_queue_on_commit
from financing.calculations import Thresholds
from financing.enums import (
    ForcedSaleStatus,
    ForcedSaleTrigger,
    MarginCallStatus,
)
from financing.margin_calls.records import (
    CALL_EVENT_WORDS,
    CallValues,
    Figures,
    Notice,
    Party,
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

CALL_COLUMNS = ["facility_id", "status", "ratio_at_issue", "debt_at_issue", "margin_value_at_issue",
                "repayment_due", "top_up_due", "deadline"]  # fmt: skip


SALE_COLUMNS = [
    "facility_id",
    "margin_call_id",
    "trigger",
    "ratio_at_request",
]  # issued_at, requested_at: now


@dataclass
class LadderBatch:
    """Calls to issue, sales to request, calls to hand over, and notices: collected per facility as plain
    values, then written together (``write``) in the caller's transaction. On PostgreSQL one statement words
    and writes them all (``financing.ladder_sql``); elsewhere ``write_in_python`` builds the rows here. The
    two write the same records (the tests run both)."""

    actor: Actor
    now: datetime.datetime = field(default_factory=timezone.now)
    new_calls: list[CallValues] = field(default_factory=list)
    new_sales: list[SaleValues] = field(default_factory=list)
    handed_over: list[CallValues] = field(default_factory=list)  # open calls to hand to their new sale
    notices: list[Notice] = field(default_factory=list)
    deadlines: dict[tuple, datetime.datetime] = field(default_factory=dict)  # per cure time and business days

    def issue_call(self, facility: Party, figures: Figures, policy: MarginPolicy) -> CallValues:
        key = (policy.cure_business_days, policy.cure_time)
        if key not in self.deadlines:  # in UTC, as stored and as a loaded call gives it in its records
            self.deadlines[key] = cure_deadline(self.now, *key).astimezone(datetime.UTC)
        call = margin_call_build(
            facility=facility, figures=figures, policy=policy, deadline=self.deadlines[key]
        )
        self.new_calls.append(call)
        return call

    def request_sale(
        self,
        facility: Party,
        figures: Figures,
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

    def warn(self, facility: Party, figures: Figures, thresholds: Thresholds) -> None:
        self.notices.append(Notice(facility, figures, thresholds))

    def restored(self, facility: Party, figures: Figures) -> None:
        self.notices.append(Notice(facility, figures))

    @property
    def warned(self) -> list[Party]:
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
        bulk_insert_with_pks(
            MarginCall,
            CALL_COLUMNS,
            self.new_calls,
            lambda c: (c.facility.pk, c.status, c.ratio_at_issue, c.debt_at_issue, c.margin_value_at_issue,
                       c.repayment_due, c.top_up_due, c.deadline),
        )  # fmt: skip
        records = [margin_call_issued_records(call, self.actor) for call in self.new_calls]
        bulk_insert_with_pks(
            ForcedSale,
            SALE_COLUMNS,
            self.new_sales,
            lambda s: (
                s.facility.pk,
                s.margin_call.pk if s.margin_call else None,
                s.trigger,
                s.ratio_at_request,
            ),
        )
        records += [forced_sale_requested_records(sale, self.actor) for sale in self.new_sales]
        sale_of_call = {id(sale.margin_call): sale for sale in self.new_sales if sale.margin_call}
        handed = []
        for call, before in zip(self.handed_over, self.handed_statuses(), strict=True):
            reason = handover_reason(sale_of_call[id(call)])
            records.append(margin_call_moved_records(call, before, reason, self.actor))
            handed.append((call.status, self.now, reason, call.pk))
        if handed:  # one prepared statement, pipelined: far cheaper than bulk_update's CASEs
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {MarginCall._meta.db_table} SET status = %s, closed_at = %s, close_reason = %s "
                    "WHERE id = %s",
                    handed,
                )
        audit_events_record([audit for audit, _ in records])
        events_record([*(notice_event(notice) for notice in self.notices), *(event for _, event in records)])


GIVEN_CALL_COLUMNS = ["id", "facility_id", "status", "ratio_at_issue", "debt_at_issue", "margin_value_at_issue",
                      "repayment_due", "top_up_due", "deadline", "closed_at", "close_reason"]  # fmt: skip


GIVEN_SALE_COLUMNS = ["id", "facility_id", "margin_call_id", "trigger", "ratio_at_request"]


# The batch as relations: ``notice``, ``call`` (each call issued or handed over, once: a call issued and
# handed over in the same batch is both) and ``sale``, each numbered in the batch's order. Then the records:
# ``event`` (every event with its words, payload and who is told, in the order ``write_in_python`` records
# them), ``audit``; then the writes.
GIVEN_INPUTS = """
notice AS MATERIALIZED (
    SELECT * FROM unnest(%(n_facility)s::bigint[], %(n_reference)s::text[], %(n_client)s::bigint[],
                         %(n_email)s::text[], %(n_ratio)s::numeric[], %(n_margin_value)s::numeric[],
                         %(n_debt)s::numeric[], %(n_status)s::text[], %(n_warning)s::numeric[],
                         %(n_margin_call)s::numeric[])
        WITH ORDINALITY AS n(facility_id, reference, client_id, email, ratio, margin_value, debt, status, warning,
                             margin_call, ord)
),
call AS MATERIALIZED (
    SELECT * FROM unnest(%(c_id)s::bigint[], %(c_facility)s::bigint[], %(c_reference)s::text[],
                         %(c_client)s::bigint[], %(c_email)s::text[], %(c_new)s::boolean[], %(c_before)s::text[],
                         %(c_ratio)s::numeric[], %(c_debt)s::numeric[], %(c_margin_value)s::numeric[],
                         %(c_repayment)s::numeric[], %(c_top_up)s::numeric[], %(c_deadline)s::timestamptz[],
                         %(c_sale)s::bigint[], %(c_reason)s::text[], %(c_handed_ord)s::integer[])
        WITH ORDINALITY AS c(id, facility_id, reference, client_id, email, new, before, ratio, debt, margin_value,
                             repayment, top_up, deadline, sale_id, reason, handed_ord, ord)
),
sale AS MATERIALIZED (
    SELECT * FROM unnest(%(s_id)s::bigint[], %(s_facility)s::bigint[], %(s_reference)s::text[],
                         %(s_client)s::bigint[], %(s_email)s::text[], %(s_trigger)s::text[],
                         %(s_trigger_words)s::text[], %(s_ratio)s::numeric[], %(s_call)s::bigint[])
        WITH ORDINALITY AS s(id, facility_id, reference, client_id, email, trigger, trigger_words, ratio, call_id, ord)
)
"""


WRITES = """
-- margin_call_payload: the call as its events give it (with its status at the time of the event).
call_payload AS (
    SELECT c.*, jsonb_build_object(
               'margin_call', c.id, 'facility', c.reference, 'margin_ratio_at_issue', c.ratio::text,
               'debt_at_issue', c.debt::text, 'margin_value_at_issue', c.margin_value::text,
               'repayment_due', c.repayment::text, 'top_up_due', c.top_up::text,
               'deadline', isoformat_utc(c.deadline)) AS body
      FROM call c
),
event AS MATERIALIZED (
    SELECT uuid_v7() AS id, e.* FROM (
        SELECT 1 AS part, n.ord, CASE WHEN n.warning IS NULL THEN 'margin.restored' ELSE 'margin.warning' END AS type,
               n.client_id, n.email, %(facility_type)s AS subject_type, n.facility_id::text AS subject_id,
               CASE WHEN n.warning IS NULL
                    THEN n.reference || ' is back within limits at ' || format_percent(n.ratio)
                    ELSE n.reference || ' is at ' || format_percent(n.ratio) || ', at or above the warning level of '
                         || format_percent(n.warning) || ': a margin call follows above '
                         || format_percent(n.margin_call) END AS summary,
               jsonb_build_object('facility', n.reference, 'margin_ratio', n.ratio::text,
                                  'margin_value', n.margin_value::text, 'debt', n.debt::text, 'status', n.status)
                   AS payload,
               n.warning IS NOT NULL AS staff
          FROM notice n
        UNION ALL
        SELECT 2, c.ord, 'margin_call.issued', c.client_id, c.email, %(call_type)s, c.id::text,
               'Margin call on ' || c.reference || ': ratio ' || format_percent(c.ratio) || '; repay '
               || format_hkd(c.repayment) || ' or top up ' || format_hkd(c.top_up) || ' cash by '
               || to_char(c.deadline AT TIME ZONE %(zone)s, 'YYYY-MM-DD HH24:MI') || ' HKT',
               c.body || jsonb_build_object('status', %(issued)s), true
          FROM call_payload c WHERE c.new
        UNION ALL
        SELECT 3, s.ord, 'forced_sale.requested', s.client_id, s.email, %(sale_type)s, s.id::text,
               'Forced sale requested on ' || s.reference || ': ' || s.trigger_words || ' (ratio '
               || format_percent(s.ratio) || ')',
               jsonb_build_object('forced_sale', s.id, 'facility', s.reference, 'trigger', s.trigger,
                                  'margin_ratio', s.ratio::text, 'margin_call', s.call_id), true
          FROM sale s
        UNION ALL
        SELECT 4, c.handed_ord, 'margin_call.' || %(handed)s, c.client_id, c.email, %(call_type)s, c.id::text,
               'Margin call #' || c.id || ' on ' || c.reference || ' ' || %(handed_words)s || ' (' || c.reason || ')',
               c.body || jsonb_build_object('status', %(handed)s, 'reason', c.reason), true
          FROM call_payload c WHERE c.sale_id IS NOT NULL
    ) e
),
audit AS (
    SELECT 2 AS part, c.ord, 'margin_call.issued' AS action, %(call_content_type)s::integer AS target_type_id,
           c.id::text AS target_id, 'Margin call #' || c.id || ' on ' || c.reference || ' (' || %(issued_label)s || ')'
               AS target_repr,
           NULL::jsonb AS before,
           jsonb_build_object('ratio_at_issue', c.ratio::text,
                              'debt_at_issue', jsonb_build_object('amount', c.debt::text, 'currency', 'HKD'),
                              'repayment_due', jsonb_build_object('amount', c.repayment::text, 'currency', 'HKD'),
                              'top_up_due', jsonb_build_object('amount', c.top_up::text, 'currency', 'HKD'),
                              'deadline', isoformat_utc(c.deadline)) AS after
      FROM call c WHERE c.new
    UNION ALL
    SELECT 3, s.ord, 'forced_sale.requested', %(sale_content_type)s::integer, s.id::text,
           'Forced sale #' || s.id || ' on ' || s.reference || ' (' || %(planned_label)s || ')', NULL::jsonb,
           jsonb_build_object('trigger', s.trigger, 'margin_ratio', s.ratio::text, 'margin_call', s.call_id)
      FROM sale s
    UNION ALL
    SELECT 4, c.handed_ord, 'margin_call.' || %(handed)s, %(call_content_type)s::integer, c.id::text,
           'Margin call #' || c.id || ' on ' || c.reference || ' (' || %(handed_label)s || ')',
           jsonb_build_object('status', c.before), jsonb_build_object('status', %(handed)s, 'reason', c.reason)
      FROM call c WHERE c.sale_id IS NOT NULL
),
calls_inserted AS (
    INSERT INTO financing_margincall ({call_columns}{call_default_columns})
    SELECT c.id, c.facility_id, CASE WHEN c.sale_id IS NULL THEN %(issued)s ELSE %(handed)s END, c.ratio, c.debt,
           c.margin_value, c.repayment, c.top_up, c.deadline,
           CASE WHEN c.sale_id IS NULL THEN NULL ELSE %(now)s END, COALESCE(c.reason, ''){call_default_values}
      FROM call c WHERE c.new ORDER BY c.ord
    RETURNING 1
),
calls_handed_over AS (
    UPDATE financing_margincall m SET status = %(handed)s, closed_at = %(now)s, close_reason = c.reason
      FROM call c
     WHERE m.id = c.id AND NOT c.new AND c.sale_id IS NOT NULL
    RETURNING 1
),
sales_inserted AS (
    INSERT INTO financing_forcedsale ({sale_columns}{sale_default_columns})
    SELECT s.id, s.facility_id, s.call_id, s.trigger, s.ratio{sale_default_values} FROM sale s ORDER BY s.ord
    RETURNING 1
),
events_inserted AS (
    INSERT INTO notifications_event (id, type, occurred_at, client_id, subject_type, subject_id, summary, payload)
    SELECT e.id, e.type, %(now)s, e.client_id, e.subject_type, e.subject_id, left(e.summary, 300), e.payload
      FROM event e ORDER BY e.part, e.ord
    RETURNING 1
),
audits_inserted AS (
    INSERT INTO accounts_auditevent (created_at, actor_id, actor_label, action, target_type_id, target_id,
                                     target_repr, before, after)
    SELECT %(now)s, %(actor_id)s::bigint, %(actor_label)s, a.action, a.target_type_id, a.target_id,
           left(a.target_repr, 200), a.before, a.after
      FROM audit a ORDER BY a.part, a.ord
    RETURNING 1
),
-- Staff are told of each alert, or (more than ``STAFF_ALERT_DIGEST_ABOVE``) of them all in one digest.
staff_told AS (SELECT COUNT(*) <= %(digest_above)s AS each FROM event WHERE staff),
fan_out AS (
    SELECT e.id, e.type, COALESCE(e.email, '') AS client_email, e.staff AND (SELECT each FROM staff_told) AS staff,
           true AS webhooks
      FROM event e
),
messages AS ({messages} RETURNING id)
SELECT (SELECT COUNT(*) FROM call WHERE new) + (SELECT COUNT(*) FROM sale) + (SELECT COUNT(*) FROM notice),
       (SELECT CASE WHEN COUNT(*) <= %(few_messages)s THEN array_agg(id ORDER BY id) END FROM messages),
       (SELECT COUNT(*) FROM messages),
       (SELECT each FROM staff_told),
       ARRAY(SELECT type FROM event WHERE staff),
       ARRAY(SELECT summary FROM event WHERE staff ORDER BY part, ord LIMIT %(digest_examples)s),
       ARRAY(SELECT id FROM sale ORDER BY ord),
       ARRAY(SELECT ARRAY[facility_id, client_id] FROM call WHERE new AND sale_id IS NULL),
       ARRAY(SELECT ARRAY[facility_id, client_id] FROM notice WHERE warning IS NOT NULL)
"""


def _ladder_sql(inputs: str) -> tuple[str, dict[str, object]]:
    """The statement on ``inputs`` (``GIVEN_INPUTS`` or ``DECIDED_INPUTS``), with the columns each model's
    defaults fill (``insert_defaults``) and their values."""
    calls = insert_defaults(MarginCall, GIVEN_CALL_COLUMNS, prefix="call_default")
    sales = insert_defaults(ForcedSale, GIVEN_SALE_COLUMNS, prefix="sale_default")
    sql = ("WITH" + inputs + "," + WRITES).format(
        call_columns=", ".join(GIVEN_CALL_COLUMNS),
        call_default_columns=calls.columns,
        call_default_values=calls.values,
        sale_columns=", ".join(GIVEN_SALE_COLUMNS),
        sale_default_columns=sales.columns,
        sale_default_values=sales.values,
        messages=messages_from_events_sql("fan_out"),
    )
    return sql, {**calls.params, **sales.params}


EVENT_TYPES = ["margin.warning", "margin.restored", "margin_call.issued", "forced_sale.requested",
               f"margin_call.{MarginCallStatus.FORCED_SALE}"]  # fmt: skip


def _writes_parameters(actor: Actor, now: datetime.datetime) -> dict[str, object]:
    """What ``WRITES`` needs besides its inputs: the words and labels it uses, who acts, when, and who is told."""
    user = actor_user(actor)
    content_type = ContentType.objects.get_for_model
    return {
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


def _run(sql: str, params: dict[str, object]) -> Written:
    """Run a ladder statement in the caller's transaction; queue the messages' delivery for after commit, and
    tell staff in one digest when the batch alerts them too often (as ``events_record`` does)."""
    with connection.cursor() as cursor:
        # Planned for thousands of rows whatever the arrays hold: JIT compiling a statement this wide costs
        # seconds, and saves nothing on a few thousand rows.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        actions, message_ids, messages, staff_told_each, alerts, first, sale_ids, called, warned = (
            cursor.fetchone()
        )
    if messages:
        messages_delivery_queue(message_ids)
    if not staff_told_each:
        events_record([staff_digest(Counter(alerts), first)])  # ``alerts``: the type of each
    return Written(actions, sale_ids, dict(called), dict(warned))


def _columns(rows: list[tuple], names: list[str], prefix: str) -> dict[str, list]:
    """Rows of values as one array parameter per column (``prefix_name``)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return {f"{prefix}_{name}": list(values) for name, values in zip(names, columns, strict=True)}


def _call_row(call: CallValues, new: bool, before: str, sale, handed_ord: int | None) -> tuple:
    """A call's values; ``sale`` (and ``handed_ord``, its place among the batch's hand-overs) when handed over."""
    party = call.facility
    return (call.pk, party.pk, party.reference, party.client.pk, party.client.email, new, before,
            call.ratio_at_issue, call.debt_at_issue, call.margin_value_at_issue, call.repayment_due,
            call.top_up_due, call.deadline, sale.pk if sale else None, handover_reason(sale) if sale else None,
            handed_ord)  # fmt: skip


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
        calls.append(_call_row(call, id(call) in new, before, sale, handed_ord))
    notices = [
        (n.facility.pk, n.facility.reference, n.facility.client.pk, n.facility.client.email, n.figures.margin_ratio,
         n.figures.margin_value, n.figures.debt, n.figures.status,
         n.thresholds.warning if n.thresholds else None, n.thresholds.margin_call if n.thresholds else None)
        for n in batch.notices
    ]  # fmt: skip
    sales = [
        (s.pk, s.facility.pk, s.facility.reference, s.facility.client.pk, s.facility.client.email, s.trigger,
         ForcedSaleTrigger(s.trigger).label.lower(), s.ratio_at_request, s.margin_call.pk if s.margin_call else None)
        for s in batch.new_sales
    ]  # fmt: skip
    sql, defaults = _ladder_sql(GIVEN_INPUTS)
    _run(
        sql,
        {
            **_columns(notices, ["facility", "reference", "client", "email", "ratio", "margin_value", "debt", "status",
                                 "warning", "margin_call"], "n"),
            **_columns(calls, ["id", "facility", "reference", "client", "email", "new", "before", "ratio", "debt",
                               "margin_value", "repayment", "top_up", "deadline", "sale", "reason", "handed_ord"], "c"),
            **_columns(sales, ["id", "facility", "reference", "client", "email", "trigger", "trigger_words", "ratio",
                               "call"], "s"),
            **defaults,
            **_writes_parameters(batch.actor, batch.now),
        },
    )  # fmt: skip
