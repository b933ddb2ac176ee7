"""A kept report on the console: each figure formatted by its kind, a report kept before kinds shown as kept."""

import datetime
import json
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from console.stress.display import figure, report_shown
from oversight.exports import Kind, Report, Table
from oversight.reports import report_as_json, report_from_json


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [
        ("750000.00", Kind.HKD, "HK$750,000.00"),
        ("-0.005", Kind.HKD, "\u2212HK$0.01"),
        ("0.0008", Kind.SHARE, "0.08%"),
        ("-0.012345", Kind.SHARE, "\u22121.23%"),
        ("0.80128205", Kind.RATIO, "80.13%"),
        ("infinite", Kind.RATIO, "∞"),
        ("10.000000000000000000", Kind.QUANTITY, "10"),
        (3, Kind.COUNT, "3"),
        ("2026-12-03T02:00:00+00:00", Kind.TIME, "2026-12-03 10:00 HKT"),
        ("1d 14h", Kind.TEXT, "1d 14h"),
        (None, Kind.HKD, "—"),
        ("", Kind.RATIO, "—"),
    ],
)
def test_a_figure_reads_by_its_kind(value, kind, shown):
    assert figure(value, kind) == shown


def test_a_float_is_refused_and_a_bad_figure_fails_loudly():
    with pytest.raises(TypeError):
        figure(1.5, Kind.HKD)
    with pytest.raises(ArithmeticError):
        figure("not a number", Kind.SHARE)


def test_kinds_survive_keeping_and_align_the_figures():
    as_made = report_as_json(
        Report(
            "A report",
            [("Lending (HKD)", Decimal("1234.5")), ("Open calls", 2)],
            [Table("Calls", ["Facility", "Issued", "Due (HKD)"],
                   [["F000001", datetime.datetime(2026, 12, 3, 2, tzinfo=datetime.UTC), Decimal("64360")]],
                   [Kind.TEXT, Kind.TIME, Kind.HKD])],
            line_kinds=[Kind.HKD, Kind.COUNT],
        )
    )  # fmt: skip
    kept = json.loads(json.dumps(as_made, cls=DjangoJSONEncoder))  # as the JSONField keeps it: plain strings
    assert kept["tables"][0]["kinds"] == ["text", "time", "hkd"]
    shown = report_shown(report_from_json(kept))
    assert [(label, cell.text) for label, cell in shown.lines] == [
        ("Lending (HKD)", "HK$1,234.50"),
        ("Open calls", "2"),
    ]
    [table] = shown.tables
    assert [(h.text, h.numeric) for h in table.headers] == [
        ("Facility", False),
        ("Issued", False),
        ("Due (HKD)", True),
    ]
    assert [c.text for c in table.rows[0]] == ["F000001", "2026-12-03 10:00 HKT", "HK$64,360.00"]


def test_a_report_kept_before_kinds_shows_its_values_as_kept():
    kept = {"title": "Old", "lines": [["Lending (HKD)", "1234.50"]],
            "tables": [{"title": "T", "headers": ["A", "B"], "rows": [["x", "0.5"]]}]}  # fmt: skip
    shown = report_shown(report_from_json(kept))
    assert shown.lines[0][1].text == "1234.50"
    assert [c.text for c in shown.tables[0].rows[0]] == ["x", "0.5"]


def test_kinds_that_do_not_match_the_columns_are_refused():
    with pytest.raises(ValueError, match="2 kinds for 3 columns"):
        Table("Calls", ["Facility", "Issued", "Due (HKD)"], [], [Kind.TEXT, Kind.TIME])
    with pytest.raises(ValueError, match="1 kinds for 2 lines"):
        Report("A report", [("a", 1), ("b", 2)], [], line_kinds=[Kind.COUNT])
