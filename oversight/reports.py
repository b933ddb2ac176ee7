"""The daily margin financing report, as of the end of any Hong Kong day, rebuilt from the ledger (positions
and debts as posted by then), the prices and FX rates in use then, and the sweep's snapshots — not from
today's state — and kept; made every business day after the close and e-mailed to staff through the outbox
(docs/reports.md)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal, localcontext
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.audit import SYSTEM, Actor, AuditSpec, actor_label, actor_user, audit_events_record
from collateral.calculations import WIDE, PositionInput, margin_ratio, pool_valuation
from collateral.enums import USABLE_PRICE_STATUSES, AssetKind
from collateral.models import Asset, CollateralPool, FxRate, Price
from core.exceptions import InvalidInput, PermissionRefused
from core.money import CENT, HKD, ZERO
from financing.calculations import margin_status
from financing.models import Facility, ForcedSale, MarginCall, MarginPolicy, SaleFill
from financing.selectors import default_policy, thresholds_of
from ledger.models import Leg
from notifications.services import EventSpec, events_record
from oversight.calculations import hkd_per_unit, plain, share
from oversight.exports import INFINITE_RATIO, Kind, Report, Table
from oversight.models import DailyReport

HONG_KONG = ZoneInfo("Asia/Hong_Kong")
LARGEST_CLIENTS = 20
LARGEST_SECURITIES = 10
CRYPTO_AT_FULL_HAIRCUT = ("BTC", "ETH")
EVENT_TYPE = "report.daily_margin"
CENTS = Decimal("0.00")  # an empty sum of amounts, to the cent
REPORT_PERMISSION = "oversight.add_dailyreport"


def day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The Hong Kong day as [start, end): the report stands as at ``end`` (midnight after the day)."""
    start = datetime.datetime.combine(day, datetime.time(0), tzinfo=HONG_KONG)
    return start, start + datetime.timedelta(days=1)


def _balances_at(accounts: list[int], end: datetime.datetime) -> dict[int, dict[str, Decimal]]:
    """Each account's balance per instrument from the legs posted before ``end``."""
    result: dict[int, dict[str, Decimal]] = defaultdict(dict)
    rows = (
        Leg.objects.filter(account_id__in=accounts, transaction__posted_at__lt=end)
        .values_list("account_id", "instrument_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    for account_id, instrument, total in rows:
        if total:
            result[account_id][instrument] = total
    return result


def _prices_at(end: datetime.datetime) -> dict[str, Price]:
    """Each asset's newest usable price observed before ``end``."""
    prices = {}
    for price in (
        Price.objects.filter(observed_at__lt=end, status__in=USABLE_PRICE_STATUSES)
        .order_by("asset_id", "-observed_at", "-pk")
        .distinct("asset_id")
        if connection.vendor == "postgresql"
        else Price.objects.filter(observed_at__lt=end, status__in=USABLE_PRICE_STATUSES).order_by(
            "-observed_at", "-pk"
        )
    ):
        prices.setdefault(price.asset_id, price)
    return prices


def _rates_at(end: datetime.datetime) -> dict[tuple[str, str], Decimal]:
    rates = {}
    for rate in FxRate.objects.filter(observed_at__lt=end, status__in=USABLE_PRICE_STATUSES).order_by(
        "-observed_at", "-pk"
    ):
        rates.setdefault((rate.currency, rate.quote), rate.rate)
    return rates


def _statuses_from_snapshots(end: datetime.datetime) -> dict[str, int]:
    """Facilities by the status of their last snapshot before ``end`` (the sweep's own record)."""
    counts: dict[str, int] = defaultdict(int)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT status, COUNT(*) FROM (SELECT DISTINCT ON (facility_id) facility_id, status "
                "FROM financing_ratiosnapshot WHERE taken_at < %s ORDER BY facility_id, taken_at DESC, id DESC) s "
                "GROUP BY status",
                [end],
            )
            for status, count in cursor.fetchall():
                counts[status] = count
        return dict(counts)
    from financing.models import RatioSnapshot

    latest = {}
    for facility_id, status in (
        RatioSnapshot.objects.filter(taken_at__lt=end)
        .order_by("taken_at", "pk")
        .values_list("facility_id", "status")
    ):
        latest[facility_id] = status
    for status in latest.values():
        counts[status] += 1
    return dict(counts)


def _age(since: datetime.datetime, end: datetime.datetime) -> str:
    hours = int((end - since).total_seconds() // 3600)
    return f"{hours // 24}d {hours % 24}h"


def _ratio_text(ratio: Decimal | None, debt: Decimal) -> object:
    return INFINITE_RATIO if ratio is None and debt > 0 else ratio


def daily_report_build(day: datetime.date) -> tuple[dict, Report]:
    """The figures and the report of ``day``, as at its end (Hong Kong time)."""
    start, end = day_bounds(day)
    assets = {a.symbol: a for a in Asset.objects.select_related("instrument")}
    prices = _prices_at(end)
    hkd = hkd_per_unit(_rates_at(end))
    facilities = list(
        Facility.objects.filter(created_at__lt=end).select_related("client").order_by("reference")
    )
    pools = dict(CollateralPool.objects.values_list("client_id", "account_id"))
    debt_accounts = [
        a for f in facilities for a in (f.principal_account_id, f.interest_account_id, f.fees_account_id)
    ]
    balances = _balances_at(
        debt_accounts + [pools[f.client_id] for f in facilities if f.client_id in pools], end
    )
    policies = {None: default_policy(), **MarginPolicy.objects.in_bulk()}

    def inputs(holdings: dict[str, Decimal], *, crypto_haircut_full: bool = False) -> list[PositionInput]:
        made = []
        for symbol, quantity in holdings.items():
            asset = assets[symbol]
            if asset.kind == AssetKind.CASH:
                price, currency = Decimal(1), asset.currency
            else:
                quote = prices.get(symbol)
                price, currency = (quote.price, quote.currency) if quote else (None, asset.currency)
            haircut = (
                Decimal(1) if crypto_haircut_full and symbol in CRYPTO_AT_FULL_HAIRCUT else asset.haircut
            )
            made.append(PositionInput(symbol=symbol, quantity=quantity, price=price, fx_to_hkd=hkd.get(currency),
                                      haircut=haircut, concentration_limit=asset.concentration_limit,
                                      eligible=asset.eligible, kind=asset.kind))  # fmt: skip
        return made

    by_asset: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: {"market_value": ZERO, "margin_value": ZERO, "quantity": ZERO}
    )
    clients, capital_view = [], []
    total_lending = total_debt = ZERO
    by_status: dict[str, int] = defaultdict(int)
    for facility in facilities:
        loan = balances.get(facility.principal_account_id, {}).get(HKD, ZERO).quantize(CENT)
        debt = sum((balances.get(a, {}).get(HKD, ZERO) for a in (facility.principal_account_id,
                    facility.interest_account_id, facility.fees_account_id)), ZERO).quantize(CENT)  # fmt: skip
        holdings = balances.get(pools.get(facility.client_id), {})
        if loan == 0 and debt == 0 and not holdings:
            continue
        valuation = pool_valuation(inputs(holdings))
        for position in valuation.positions:
            figures = by_asset[position.symbol]
            figures["market_value"] += position.market_value
            figures["margin_value"] += position.margin_value
            figures["quantity"] += position.quantity
        total_lending += loan
        total_debt += debt
        ratio = margin_ratio(debt, valuation.margin_value)
        status = margin_status(debt, valuation.margin_value, thresholds_of(policies[facility.policy_id]))
        by_status[str(status)] += 1
        clients.append((facility, loan, debt, valuation, ratio, status))
        if debt > 0 and any(s in holdings for s in CRYPTO_AT_FULL_HAIRCUT):
            without = pool_valuation(inputs(holdings, crypto_haircut_full=True)).margin_value
            if debt > without:
                capital_view.append((facility, debt, valuation.margin_value, without, debt - without,
                                     margin_ratio(debt, without)))  # fmt: skip

    capital = settings.BROKER_CAPITAL_HKD
    cap = (capital * settings.FIRM_LOAN_TO_CAPITAL_MULTIPLE).quantize(CENT)
    client_cap = (capital * settings.CLIENT_LOAN_SHARE_OF_CAPITAL).quantize(CENT)
    total_mv = sum((f["market_value"] for f in by_asset.values()), ZERO)
    total_lv = sum((f["margin_value"] for f in by_asset.values()), ZERO)

    # Open calls as at the end of the day; the day's forced-sale fills; every shortfall recorded by then.
    calls = MarginCall.objects.filter(issued_at__lt=end).filter(
        Q(closed_at__isnull=True) | Q(closed_at__gte=end)
    )
    calls = calls.select_related("facility__client").order_by("issued_at")
    fills = SaleFill.objects.filter(created_at__gte=start, created_at__lt=end).select_related(
        "order__forced_sale__facility"
    )
    sales: dict[int, dict] = {}
    for fill in fills.order_by("pk"):
        sale = fill.order.forced_sale
        row = sales.setdefault(
            sale.pk,
            {"sale": sale, "proceeds": ZERO, "fills": 0, "value": ZERO, "reference": ZERO, "assets": set()},
        )
        row["proceeds"] += fill.proceeds
        row["fills"] += 1
        row["assets"].add(fill.order.asset_id)
        if fill.order.reference_price:
            row["value"] += fill.quantity * fill.price
            row["reference"] += fill.quantity * fill.order.reference_price
    shortfalls = ForcedSale.objects.filter(requested_at__lt=end, shortfall__gt=0).select_related(
        "facility__client"
    )

    def slippage(row) -> Decimal | None:
        if not row["reference"]:
            return None
        with localcontext(prec=WIDE):
            return ((row["value"] - row["reference"]) / row["reference"]).quantize(
                Decimal("0.000001"), rounding=ROUND_HALF_UP
            )

    snapshots = _statuses_from_snapshots(end)
    figures = {
        "day": day.isoformat(), "as_at": end.isoformat(), "total_lending": total_lending, "total_debt": total_debt,
        "capital": capital, "lending_cap": cap, "lending_share_of_cap": share(total_lending, cap),
        "client_cap": client_cap, "collateral_market_value": total_mv, "collateral_margin_value": total_lv,
        "facilities_by_status": dict(by_status), "facilities_by_status_snapshots": snapshots,
        "open_calls": calls.count(), "open_calls_due": sum((c.repayment_due.amount for c in calls), CENTS),
        "forced_sales_filled_today": len(sales), "forced_sale_proceeds_today": sum((r["proceeds"] for r in sales.values()), CENTS),
        "shortfall": sum((s.shortfall for s in shortfalls), CENTS),
        "capital_view_facilities": len(capital_view),
        "capital_view_deficiency": sum((row[4] for row in capital_view), CENTS),
    }  # fmt: skip
    status_lines = [
        *((f"Facilities {status} (valued now from the ledger)", count) for status, count in sorted(by_status.items())),
        *((f"Facilities {status} (the sweep's last snapshot)", count) for status, count in sorted(snapshots.items())),
    ]  # fmt: skip
    lined = [
        ("As at", f"end of {day.isoformat()} (Hong Kong time)", Kind.TEXT),
        ("Total lending (principal, HKD)", total_lending, Kind.HKD),
        ("Firm cap: 5 × capital (HKD)", cap, Kind.HKD),
        ("Lending / cap", figures["lending_share_of_cap"], Kind.SHARE),
        ("Total debt with interest and fees (HKD)", total_debt, Kind.HKD),
        ("Collateral market value (HKD)", total_mv, Kind.HKD),
        ("Collateral margin value (HKD)", total_lv, Kind.HKD),
        *((label, count, Kind.COUNT) for label, count in status_lines),
        ("Open margin calls", figures["open_calls"], Kind.COUNT),
        ("Repayments due on open calls (HKD)", figures["open_calls_due"], Kind.HKD),
        ("Forced sales with fills that day", figures["forced_sales_filled_today"], Kind.COUNT),
        ("Their proceeds (HKD)", figures["forced_sale_proceeds_today"], Kind.HKD),
        ("Shortfalls recorded (HKD)", figures["shortfall"], Kind.HKD),
        (
            "Capital view: facilities under-collateralised with BTC and ETH at a 100% haircut",
            len(capital_view),
            Kind.COUNT,
        ),
        ("Capital view: total deficiency (HKD)", figures["capital_view_deficiency"], Kind.HKD),
        ("Haircuts and limits", "the asset terms in force when the report was made", Kind.TEXT),
    ]
    lines = [(label, value) for label, value, _ in lined]
    largest = sorted(clients, key=lambda c: (-c[1], c[0].reference))[:LARGEST_CLIENTS]
    tables = [
        Table("Twenty largest clients by loan", ["Client", "Facility", "Loan (HKD)", "Per-client cap (HKD)", "Share of the cap",
                                                  "Debt (HKD)", "Margin value (HKD)", "Ratio", "Status"],
              [[f.client.name, f.reference, loan, client_cap, share(loan, client_cap), debt, v.margin_value,
                _ratio_text(ratio, debt), status] for f, loan, debt, v, ratio, status in largest],
              [Kind.TEXT, Kind.TEXT, Kind.HKD, Kind.HKD, Kind.SHARE, Kind.HKD, Kind.HKD, Kind.RATIO, Kind.TEXT]),
        Table("Collateral by class and asset", ["Class", "Asset", "Quantity", "Market value (HKD)", "Margin value (HKD)",
                                                 "Share of market value"],
              [[assets[s].kind, s, plain(f["quantity"]), f["market_value"], f["margin_value"], share(f["market_value"], total_mv)]
               for s, f in sorted(by_asset.items(), key=lambda kv: (assets[kv[0]].kind, -kv[1]["market_value"]))],
              [Kind.TEXT, Kind.TEXT, Kind.QUANTITY, Kind.HKD, Kind.HKD, Kind.SHARE]),
        Table("Securities with the largest share of collateral", ["Security", "Market value (HKD)", "Share of all collateral"],
              [[s, f["market_value"], share(f["market_value"], total_mv)]
               for s, f in sorted(((s, f) for s, f in by_asset.items() if assets[s].kind == AssetKind.SECURITY),
                                  key=lambda kv: -kv[1]["market_value"])[:LARGEST_SECURITIES]],
              [Kind.TEXT, Kind.HKD, Kind.SHARE]),
        Table("Open margin calls", ["Call", "Facility", "Client", "Issued", "Age", "Deadline", "Ratio at issue",
                                     "Repayment due (HKD)", "Top-up due (HKD)"],
              [[c.pk, c.facility.reference, c.facility.client.name, c.issued_at, _age(c.issued_at, end), c.deadline,
                _ratio_text(c.ratio_at_issue, c.debt_at_issue.amount), c.repayment_due.amount, c.top_up_due.amount] for c in calls],
              [Kind.TEXT, Kind.TEXT, Kind.TEXT, Kind.TIME, Kind.TEXT, Kind.TIME, Kind.RATIO, Kind.HKD, Kind.HKD]),
        Table("The day's forced sales", ["Sale", "Facility", "Status now", "Assets", "Fills", "Proceeds (HKD)",
                                         "Slippage against the oracle"],
              [[r["sale"].pk, r["sale"].facility.reference, r["sale"].status, ", ".join(sorted(r["assets"])), r["fills"],
                r["proceeds"], slippage(r)] for r in sales.values()],
              [Kind.TEXT, Kind.TEXT, Kind.TEXT, Kind.TEXT, Kind.COUNT, Kind.HKD, Kind.SHARE]),
        Table("Shortfalls", ["Sale", "Facility", "Client", "Requested", "Shortfall (HKD)"],
              [[s.pk, s.facility.reference, s.facility.client.name, s.requested_at, s.shortfall] for s in shortfalls],
              [Kind.TEXT, Kind.TEXT, Kind.TEXT, Kind.TIME, Kind.HKD]),
        Table("Capital view: BTC and ETH at a 100% haircut", ["Facility", "Client", "Debt (HKD)", "Margin value (HKD)",
                                                              "Margin value without crypto (HKD)", "Deficiency (HKD)", "Ratio"],
              [[f.reference, f.client.name, debt, with_crypto, without, deficiency, _ratio_text(ratio, debt)]
               for f, debt, with_crypto, without, deficiency, ratio in sorted(capital_view, key=lambda r: -r[4])],
              [Kind.TEXT, Kind.TEXT, Kind.HKD, Kind.HKD, Kind.HKD, Kind.HKD, Kind.RATIO]),
    ]  # fmt: skip
    title = f"Daily margin financing report, {day.isoformat()}"
    return figures, Report(title, lines, tables, line_kinds=[kind for _, _, kind in lined])


def report_as_json(report: Report) -> dict:
    from accounts.audit import json_value

    return {
        "title": report.title,
        "lines": [[label, json_value(value)] for label, value in report.lines],
        "tables": [{"title": t.title, "headers": list(t.headers), "rows": [[json_value(c) for c in row] for row in t.rows],
                    "kinds": list(t.kinds)} for t in report.tables],
        "line_kinds": list(report.line_kinds),
    }  # fmt: skip


def report_from_json(content: dict) -> Report:
    return Report(
        content["title"], [tuple(line) for line in content["lines"]],
        [Table(t["title"], t["headers"], t["rows"], t.get("kinds", ())) for t in content["tables"]],
        content.get("line_kinds", ()),  # a report kept before kinds were kept: every figure as text
    )  # fmt: skip


@transaction.atomic
def daily_report_make(
    *, day: datetime.date, actor: Actor = SYSTEM, trigger: str = "on_demand", email: bool = False
) -> DailyReport:
    """Build the report of ``day`` and keep it (made again, it replaces the kept one; audited). ``email``: tell
    staff through the outbox (the scheduled run does)."""
    user = actor_user(actor)
    if user is not None and not (user.is_active and user.has_perm(REPORT_PERMISSION)):
        raise PermissionRefused("Only risk officers may make a report.")
    today = timezone.localdate(timezone=HONG_KONG)
    if day > today:
        raise InvalidInput(f"{day.isoformat()} has not happened yet; a report is as of a day that has.")
    figures, report = daily_report_build(day)
    kept, created = DailyReport.objects.update_or_create(
        day=day,
        defaults={"made_at": timezone.now(), "made_by_label": actor_label(actor), "trigger": trigger,
                  "figures": figures, "content": report_as_json(report)},
    )  # fmt: skip
    audit_events_record([AuditSpec(actor, "daily_report.made" if created else "daily_report.remade", kept,
                                   after={"day": day.isoformat(), "trigger": trigger})])  # fmt: skip
    if email:
        events_record([EventSpec(
            type=EVENT_TYPE, summary=f"Daily margin financing report for {day.isoformat()}",
            payload={"day": day.isoformat(), "report": kept.pk, "total_lending": figures["total_lending"],
                     "lending_share_of_cap": figures["lending_share_of_cap"], "open_calls": figures["open_calls"],
                     "shortfall": figures["shortfall"], "capital_view_deficiency": figures["capital_view_deficiency"],
                     "console": f"/console/reports/{day.isoformat()}/"},
            subject=kept, notify_client=False, notify_staff=True, notify_webhooks=False,
        )])  # fmt: skip
        kept.emailed_at = timezone.now()
        kept.save(update_fields=["emailed_at"])
    kept.refresh_from_db()  # the figures as kept (decimals as strings)
    return kept
