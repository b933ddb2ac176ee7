"""Positions, the ratio's history chart and the activity list with its CSV."""

import csv
import datetime
import io
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.audit import SYSTEM
from collateral.services import collateral_deposit
from financing.lending.services import drawdown_create
from financing.models import RatioSnapshot
from financing.selectors import facility_pool
from tests.collateral.factories import asset
from tests.helpers import login_as

pytestmark = pytest.mark.django_db


def html_of(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def chart_of(html: str) -> dict:
    start = html.index('<script id="ratio-history" type="application/json">') + len(
        '<script id="ratio-history" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_positions_show_price_haircut_values_and_a_concentration_cut_in_words(signed_in, facility):
    pool = facility_pool(facility)
    collateral_deposit(pool=pool, asset=asset("0700.HK"), quantity="10000", actor=SYSTEM)
    html = html_of(signed_in.get(reverse("portal:positions", args=[facility.pk])))
    assert "US$100,000.00" in html  # BTC's price
    assert "60%" in html  # BTC's haircut
    assert "HK$4,000,000.00" in html  # Tencent's market value
    # 4,780,000 in the pool, Tencent capped at half: 2,390,000 counted, 1,610,000 above the limit
    assert "HK$1,610,000.00 above the limit of 50% of the pool gets no margin value." in html
    assert "HK$1,673,000.00" in html  # 2,390,000 × 0.7
    assert "HK$4,780,000.00" in html


def snapshots(facility, count: int, *, every: datetime.timedelta, end=None):
    end = end or timezone.now()
    RatioSnapshot.objects.bulk_create(
        RatioSnapshot(
            facility=facility,
            taken_at=end - every * (count - index),
            market_value=Decimal("780000"),
            margin_value=Decimal("312000"),
            debt=Decimal("265200"),
            margin_ratio=Decimal("0.85") + Decimal(index % 10) / 100,
            status="ok",
        )
        for index in range(count)
    )


def test_the_chart_draws_the_ratio_with_the_thresholds_over_the_chosen_range(signed_in, facility):
    RatioSnapshot.objects.all().delete()
    snapshots(facility, 48, every=datetime.timedelta(hours=1))
    html = html_of(signed_in.get(reverse("portal:history", args=[facility.pk]), {"range": "1d"}))
    chart = chart_of(html)
    ratio, warning, call, sale = chart["data"]["datasets"]
    assert len(ratio["data"]) == 25  # the point standing at the start, the 23 hours after it, and now
    assert [level["data"][0]["y"] for level in (warning, call, sale)] == ["0.9000", "1.0000", "1.2000"]
    assert warning["data"][-1]["x"] == ratio["data"][-1]["x"]  # each level drawn across the whole period
    assert chart["valueFormat"] == "percent"
    # A time axis: each point at its Hong Kong wall-clock time, without an offset (the browser shows it as is).
    assert chart["options"]["scales"]["x"]["type"] == "time"
    last = RatioSnapshot.objects.order_by("-taken_at").first()
    at_last = last.taken_at.astimezone(ZoneInfo("Asia/Hong_Kong")).strftime("%Y-%m-%dT%H:%M:%S")
    assert {"x": at_last, "y": f"{last.margin_ratio}"} in ratio["data"]
    assert "chartjs-adapter-date-fns-3.0.0/chartjs-adapter-date-fns.bundle.min.js" in html
    assert 'aria-current="page">1 day<' in html
    assert "94.0%" in html  # the highest in the table beside the chart


def test_a_year_is_never_more_than_a_thousand_points(signed_in, facility):
    snapshots(facility, 5000, every=datetime.timedelta(hours=2))
    html = html_of(signed_in.get(reverse("portal:history", args=[facility.pk]), {"range": "1y"}))
    assert len(chart_of(html)["data"]["datasets"][0]["data"]) <= 1001  # and the line drawn to now


def test_the_activity_is_filtered_paginated_and_downloadable(signed_in, facility):
    collateral_deposit(pool=facility_pool(facility), asset=asset("ETH"), quantity="2", actor=SYSTEM)
    url = reverse("portal:history", args=[facility.pk])
    html = html_of(signed_in.get(url))
    assert "HK$265,200.00" in html
    assert "+2 ETH" in html
    html = html_of(signed_in.get(url, {"kind": "drawdown"}))
    assert "HK$265,200.00" in html
    assert "+2 ETH" not in html
    for _ in range(30):
        drawdown_create(facility=facility, amount="10.00", actor=SYSTEM)  # within max advance with the ETH
    html = html_of(signed_in.get(url, {"kind": "drawdown"}))
    assert "Page 1 of 2" in html
    html = html_of(signed_in.get(url, {"kind": "drawdown", "page": "2"}))
    assert "HK$265,200.00" in html  # the oldest, on the last page
    response = signed_in.get(reverse("portal:history_csv", args=[facility.pk]), {"kind": "drawdown"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["Time (HKT)", "Kind", "Description", "Amount (HKD)", "Quantity"]
    assert len(rows) == 32
    assert rows[-1][1:4] == ["Drawdowns", "Drawdown", "265200.00"]


@pytest.mark.parametrize("name", ["portal:positions", "portal:history", "portal:history_csv"])
def test_another_client_s_facility_does_not_exist_for_them(client, facility, stranger, name):
    login_as(client, stranger)
    assert client.get(reverse(name, args=[facility.pk])).status_code == 404


def test_thinning_in_the_database_keeps_the_last_point_of_each_slice(facility):
    """The same points as thinning every row in Python: the last of each equal slice, and the one at the start."""
    from financing.history import RatioPoint, ratio_history

    RatioSnapshot.objects.all().delete()
    end = timezone.now()
    snapshots(facility, 3000, every=datetime.timedelta(seconds=37), end=end)
    start = end - datetime.timedelta(hours=20)
    everything = [
        RatioPoint(*row)
        for row in RatioSnapshot.objects.filter(facility_id=facility.pk)
        .order_by("taken_at", "pk")
        .values_list("taken_at", "margin_ratio", "market_value", "margin_value", "debt", "status")
    ]
    opening = [p for p in everything if p.at < start][-1:]
    width = (end - start) / (100 - 1 - len(opening))
    slices = {}
    for point in (p for p in everything if start <= p.at <= end):
        slices[int((point.at - start) / width)] = point
    expected = opening + [slices[key] for key in sorted(slices)]
    assert ratio_history(facility.pk, start, end, max_points=100) == expected
    assert len(expected) <= 100
