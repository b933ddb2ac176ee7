"""Reads for the stress pages and exports: the library with each scenario's latest run, a run beside the
previous run of its scenario, the spread of ratios after the shock, and a run as an exportable report."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext_noop

from core.money import ZERO
from financing.enums import MarginStatus
from oversight.calculations import share
from oversight.enums import StressRunStatus
from oversight.exports import INFINITE_RATIO, Report, Table
from oversight.models import StressResult, StressRun, StressScenario

STATUS_ORDER = [MarginStatus.FORCED_SALE, MarginStatus.MARGIN_CALL, MarginStatus.WARNING, MarginStatus.OK,
                MarginStatus.NO_DEBT]  # fmt: skip
# The buckets of the ratio-after chart: (label, lower bound inclusive, upper bound exclusive).
RATIO_BUCKETS = [
    ("< 50%", None, Decimal("0.5")),
    ("50–85%", Decimal("0.5"), Decimal("0.85")),
    ("85–90%", Decimal("0.85"), Decimal("0.9")),
    ("90–100%", Decimal("0.9"), Decimal("1")),
    ("100–120%", Decimal("1"), Decimal("1.2")),
    ("120–200%", Decimal("1.2"), Decimal("2")),
    ("≥ 200%", Decimal("2"), None),
]


@dataclass(frozen=True)
class LibraryRow:
    scenario: StressScenario
    latest: StressRun | None
    previous: StressRun | None


def scenario_library() -> list[LibraryRow]:
    """Every scenario, the library's first, with its latest finished run and the one before it."""
    rows = []
    for scenario in StressScenario.objects.order_by("-in_library", "pk"):
        runs = list(
            StressRun.objects.filter(scenario=scenario, status=StressRunStatus.FINISHED).order_by(
                "-started_at", "-pk"
            )[:2]
        )
        rows.append(LibraryRow(scenario, runs[0] if runs else None, runs[1] if len(runs) > 1 else None))
    return rows


def shortfall_chart(rows: list[LibraryRow]) -> dict:
    """A Chart.js bar chart: the shortfall and the repayments due after each scenario's latest run."""
    ran = [row for row in rows if row.latest]
    return {
        "type": "bar",
        "valueFormat": "hkd",
        "data": {
            "labels": [row.scenario.name for row in ran],
            "datasets": [
                {"label": "Shortfall", "data": [str(row.latest.shortfall) for row in ran], "backgroundColor": "#b3261e"},
                {"label": "Repayments that cure", "data": [str(row.latest.amount_due) for row in ran], "backgroundColor": "#e5a50a"},
            ],
        },
        "options": {"indexAxis": "y"},
    }  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    label: str
    now: object
    previous: object
    kind: str  # "hkd", "count", "percent"

    @property
    def change(self):
        if self.previous is None or self.now is None or self.kind == "percent":
            return None
        return self.now - self.previous


def run_comparisons(run: StressRun) -> list[Comparison]:
    """The firm's figures of ``run`` beside those of the previous run of the same scenario."""
    previous = run.previous

    def pair(label, attribute, kind="hkd"):
        return Comparison(
            label, getattr(run, attribute), getattr(previous, attribute) if previous else None, kind
        )

    def status(label, key):
        return Comparison(label, run.by_status_after.get(key, 0),
                          previous.by_status_after.get(key, 0) if previous else None, "count")  # fmt: skip

    return [
        status(gettext_noop("Facilities at a forced sale after"), MarginStatus.FORCED_SALE),
        status(gettext_noop("Facilities with a margin call after"), MarginStatus.MARGIN_CALL),
        status(gettext_noop("Facilities at warning after"), MarginStatus.WARNING),
        pair(gettext_noop("Repayments that cure"), "amount_due"),
        pair(gettext_noop("Forced-sale proceeds"), "sale_proceeds"),
        pair(gettext_noop("Shortfall"), "shortfall"),
        pair(gettext_noop("Market value after"), "market_value_after"),
        pair(gettext_noop("Margin value after"), "margin_value_after"),
        pair(gettext_noop("Lending"), "lending"),
        pair(gettext_noop("Lending after the forced sales"), "lending_after_sales"),
    ]


@dataclass(frozen=True)
class FirmShares:
    shortfall_of_capital: Decimal | None
    lending_of_cap: Decimal | None
    lending_after_sales_of_cap: Decimal | None


def firm_shares(run: StressRun) -> FirmShares:
    return FirmShares(
        share(run.shortfall, run.capital), share(run.lending, run.lending_cap),
        share(run.lending_after_sales, run.lending_cap),
    )  # fmt: skip


def ratio_distribution(run: StressRun) -> list[tuple[str, int, int]]:
    """(bucket, facilities before, facilities after) over the facilities with debt; infinite ratios last."""
    with_debt = StressResult.objects.filter(run=run, debt__gt=0)
    aggregates = {}
    for i, (_, low, high) in enumerate(RATIO_BUCKETS):
        for when, field in (("before", "ratio_before"), ("after", "ratio_after")):
            condition = Q(**{f"{field}__isnull": False})
            if low is not None:
                condition &= Q(**{f"{field}__gte": low})
            if high is not None:
                condition &= Q(**{f"{field}__lt": high})
            aggregates[f"{when}_{i}"] = Count("pk", filter=condition)
    aggregates["before_inf"] = Count("pk", filter=Q(ratio_before__isnull=True, status_before__gt=""))
    aggregates["after_inf"] = Count("pk", filter=Q(ratio_after__isnull=True))
    counts = with_debt.aggregate(**aggregates)
    rows = [
        (label, counts[f"before_{i}"], counts[f"after_{i}"]) for i, (label, _, _) in enumerate(RATIO_BUCKETS)
    ]
    rows.append(("∞", counts["before_inf"], counts["after_inf"]))
    return rows


def ratio_chart(distribution: list[tuple[str, int, int]]) -> dict:
    return {
        "type": "bar",
        "data": {
            "labels": [label for label, _, _ in distribution],
            "datasets": [
                {"label": "Before", "data": [before for _, before, _ in distribution], "backgroundColor": "#6b8fb3"},
                {"label": "After the shock", "data": [after for _, _, after in distribution], "backgroundColor": "#b3261e"},
            ],
        },
        "options": {"scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0},
                                      "title": {"display": True, "text": "facilities"}}}},
    }  # fmt: skip


@dataclass(frozen=True)
class VolumeRow:
    symbol: str
    quantity: Decimal
    market_value: Decimal
    daily_liquidity: Decimal | None
    share_of_daily_liquidity: Decimal | None


def sale_volume_rows(run: StressRun) -> list[VolumeRow]:
    """The forced-sale volume per asset as kept on the run, read back into decimals."""

    def number(value) -> Decimal | None:
        return None if value in (None, "") else Decimal(str(value))

    return [
        VolumeRow(symbol, number(v["quantity"]), number(v["market_value"]), number(v["daily_liquidity"]),
                  number(v["share_of_daily_liquidity"]))
        for symbol, v in run.sale_volume.items()
    ]  # fmt: skip


def run_rows(run: StressRun, *, status: str = "", troubled_only: bool = False) -> QuerySet[StressResult]:
    rows = StressResult.objects.filter(run=run).select_related("facility__client")
    if status:
        rows = rows.filter(status_after=status)
    elif troubled_only:
        rows = rows.filter(
            status_after__in=[MarginStatus.FORCED_SALE, MarginStatus.MARGIN_CALL, MarginStatus.WARNING]
        )
    return rows.order_by("-shortfall", "-repayment_to_cure", "facility_id")


def plan_words(plan: list[dict]) -> str:
    return "; ".join(f"{p['asset']} {p['quantity']}" for p in plan)


def run_report(run: StressRun) -> Report:
    """The whole run: the firm's figures, the prices, the volume to sell and every facility's row."""
    shares = firm_shares(run)
    lines = [
        ("Scenario", f"{run.scenario.name} ({run.scenario.key})"),
        ("Shocks", ", ".join(f"{k} {v}" for k, v in run.shocks.items())),
        ("Sale cost", run.sale_cost if run.sale_cost is not None else "each facility's policy"),
        ("Run", f"#{run.pk} {run.started_at.isoformat()} by {run.requested_by_label} ({run.trigger})"),
        ("Previous run of the scenario", f"#{run.previous_id}" if run.previous_id else "none"),
        ("Facilities", run.facilities),
        *((f"After: {status}", run.by_status_after.get(status, 0)) for status in STATUS_ORDER),
        ("Repayments that cure (HKD)", run.amount_due),
        ("Forced-sale proceeds (HKD)", run.sale_proceeds),
        ("Shortfall (HKD)", run.shortfall),
        ("Capital (HKD)", run.capital),
        ("Shortfall / capital", shares.shortfall_of_capital),
        ("Lending (HKD)", run.lending),
        ("Lending after the forced sales (HKD)", run.lending_after_sales),
        ("Cap: 5 × capital (HKD)", run.lending_cap),
        ("Lending / cap", shares.lending_of_cap),
    ]
    prices = Table("Prices", ["Asset", "Shock", "Price before", "Price after", "Currency"], [
        [s, p["shock"], p["price_before"], p["price_after"], p["currency"]] for s, p in run.prices.get("assets", {}).items()
    ] + [[pair, p["shock"], p["before"], p["after"], "FX"] for pair, p in run.prices.get("fx", {}).items()])  # fmt: skip
    volume = Table("Forced-sale volume per asset", ["Asset", "Quantity", "Market value (HKD)", "Daily liquidity", "Share of a day"], [
        [s, v["quantity"], v["market_value"], v["daily_liquidity"], v["share_of_daily_liquidity"]] for s, v in run.sale_volume.items()
    ])  # fmt: skip
    facilities = Table(
        "Facilities",
        ["Facility", "Client", "Ratio before", "Status before", "Market value after", "Margin value after", "Debt",
         "Ratio after", "Status after", "Repayment that cures", "Forced sale", "Sale proceeds", "Ratio after sale",
         "Shortfall"],
        [[r.facility.reference, r.facility.client.name, r.ratio_before, r.status_before, r.market_value, r.margin_value,
          r.debt, r.ratio_after if r.ratio_after is not None else (INFINITE_RATIO if r.debt > ZERO else ""), r.status_after,
          r.repayment_to_cure, plan_words(r.sale_plan), r.sale_proceeds, r.ratio_after_sale, r.shortfall]
         for r in run_rows(run)],
    )  # fmt: skip
    return Report(f"Stress test #{run.pk}: {run.scenario.name}", lines, [prices, volume, facilities])
