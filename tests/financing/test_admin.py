"""The lending pages of the admin, as staff use them."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.audit import SYSTEM
from financing.lending.services import drawdown_create
from financing.models import Drawdown, Facility
from financing.selectors import facility_debt, facility_pool
from tests.accounts.factories import CreditProfileFactory, StaffFactory
from tests.financing.factories import facility_with_pool
from tests.helpers import login_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def facility(market):
    facility = facility_with_pool(holdings={"BTC": "1", "HKD": "100000.00"})
    drawdown_create(facility=facility, amount="300000.00", actor=SYSTEM)
    return facility


@pytest.mark.parametrize(
    "role", ["Credit officer", "Risk officer", "Operations", "Compliance", "Administrator"]
)
@pytest.mark.parametrize(
    "page",
    [
        "admin:financing_facility_changelist",
        "admin:financing_drawdown_changelist",
        "admin:financing_repayment_changelist",
        "admin:financing_marginpolicy_changelist",
        "admin:financing_margincall_changelist",
        "admin:collateral_collateralpool_changelist",
        "admin:collateral_asset_changelist",
        "admin:collateral_price_changelist",
        "admin:collateral_collateralmovement_changelist",
        "admin:ledger_transaction_changelist",
        "admin:ledger_balance_changelist",
        "admin:financing_marginstate_changelist",
        "admin:financing_ratiosnapshot_changelist",
        "admin:financing_sweeprun_changelist",
        "admin:financing_forcedsale_changelist",
        "admin:notifications_event_changelist",
        "admin:notifications_outboxmessage_changelist",
    ],
)
def test_every_role_reads_the_lending_pages(client, facility, role, page):
    login_as(client, StaffFactory(role=role))
    assert client.get(reverse(page)).status_code == 200


def test_the_facility_page_shows_its_ratio_and_status(client, facility):
    login_as(client, StaffFactory(role="Risk officer"))
    body = client.get(reverse("admin:financing_facility_change", args=[facility.pk])).content.decode()
    assert "72.82%" in body  # 300,000 / 412,000
    assert "HK$412,000.00" in body
    assert "Within limits" in body
    body = client.get(reverse("admin:financing_facility_changelist")).content.decode()
    assert "72.82%" in body


def test_the_pool_page_shows_positions_and_valuation(client, facility):
    login_as(client, StaffFactory(role="Compliance"))
    pool = facility_pool(facility)
    body = client.get(reverse("admin:collateral_collateralpool_change", args=[pool.pk])).content.decode()
    assert "HK$780,000.00" in body  # 1 BTC
    assert "HK$312,000.00" in body


def test_a_refused_drawdown_in_the_admin_says_why_and_writes_nothing(client, facility):
    login_as(client, StaffFactory(role="Credit officer"))
    response = client.post(
        reverse("admin:financing_drawdown_add"),
        {"facility": facility.pk, "amount_0": "60000.00", "amount_1": "HKD"},
        follow=True,
    )
    assert "above the max advance of 85.00%; at most HK$50,200.00 can be drawn" in response.content.decode()
    assert Drawdown.objects.count() == 1
    assert facility_debt(facility).principal == Decimal("300000.00")


def test_a_drawdown_in_the_admin(client, facility):
    login_as(client, StaffFactory(role="Credit officer"))
    response = client.post(
        reverse("admin:financing_drawdown_add"),
        {"facility": facility.pk, "amount_0": "50000.00", "amount_1": "HKD"},
    )
    assert response.status_code == 302
    assert facility_debt(facility).principal == Decimal("350000.00")


def test_opening_a_facility_in_the_admin(client, market):
    profile = CreditProfileFactory()
    login_as(client, StaffFactory(role="Credit officer"))
    response = client.post(
        reverse("admin:financing_facility_add"),
        {
            "client": profile.client.pk,
            "limit_0": "2000000.00",
            "limit_1": "HKD",
            "rate_kind": "fixed",
            "fixed_rate": "0.07",
            "base_rate_name": "",
            "spread": "0",
            "opened_on": "2026-11-25",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Facility.objects.get(client=profile.client).reference.startswith("F")


def test_a_withdrawal_in_the_admin_is_checked_against_max_advance(client, facility, market):
    login_as(client, StaffFactory(role="Operations"))
    pool = facility_pool(facility)
    response = client.post(
        reverse("admin:collateral_collateralmovement_add"),
        {
            "pool": pool.pk,
            "kind": "withdrawal",
            "asset": "HKD",
            "quantity": "100000",
            "external_reference": "",
        },
        follow=True,
    )
    assert "above the max advance" in response.content.decode()


def test_the_at_risk_list_puts_the_highest_ratio_first(client, facility, market):

    from financing.monitoring.cycle import monitoring_cycle_run
    from tests.collateral.factories import price

    calm = facility_with_pool(holdings={"BTC": "10"})
    drawdown_create(facility=calm, amount="100000.00", actor=SYSTEM)
    price("BTC", "94000")  # the first facility: 300,000 / (293,280 + 100,000) = 76.3%; calm: 3.4%
    monitoring_cycle_run(trigger="test")
    login_as(client, StaffFactory(role="Risk officer"))
    body = client.get(reverse("admin:financing_marginstate_changelist")).content.decode()
    assert body.index(facility.reference) < body.index(calm.reference)
    assert "76.28%" in body


def _policy_form(policy, **changes) -> dict:
    """The margin policy's admin form as it stands, with ``changes``."""
    data = {
        "name": policy.name,
        "max_advance": f"{policy.max_advance}",
        "warning": f"{policy.warning}",
        "margin_call": f"{policy.margin_call}",
        "forced_sale": f"{policy.forced_sale}",
        "target": f"{policy.target}",
        "cure_business_days": str(policy.cure_business_days),
        "cure_time": policy.cure_time.strftime("%H:%M:%S"),
        "sale_cost_rate": f"{policy.sale_cost_rate}",
        "sale_order": "[]",
    }
    if policy.is_default:
        data["is_default"] = "on"
    return {**data, **changes}


def test_the_admin_asks_for_new_thresholds_with_a_four_eyes_request(client):
    from accounts.models import ApprovalRequest
    from accounts.services import approval_request_approve
    from financing.models import MarginPolicy
    from financing.selectors import default_policy

    policy = default_policy()
    maker, checker = StaffFactory(role="Risk officer"), StaffFactory(role="Risk officer")
    login_as(client, maker)
    response = client.post(
        reverse("admin:financing_marginpolicy_change", args=[policy.pk]),
        _policy_form(policy, warning="0.8800", cure_business_days="2"),
        follow=True,
    )
    assert response.status_code == 200
    assert "change only when a second risk officer approves" in response.content.decode()
    stored = MarginPolicy.objects.get(pk=policy.pk)
    assert stored.warning == Decimal("0.90")  # not written by the form
    assert stored.cure_business_days == 2  # not a threshold: saved at once
    (asked,) = ApprovalRequest.objects.filter(kind="margin_policy", status="pending")
    assert asked.proposed == {"warning": "0.8800"}
    assert asked.requested_by == maker
    approval_request_approve(request=asked, actor=checker)
    assert MarginPolicy.objects.get(pk=policy.pk).warning == Decimal("0.88")


def test_the_admin_asks_to_make_a_policy_the_default_and_never_makes_it_directly(client):
    from accounts.models import ApprovalRequest
    from financing.models import MarginPolicy
    from financing.selectors import default_policy

    login_as(client, StaffFactory(role="Risk officer"))
    standard = default_policy()
    form = _policy_form(standard, name="Tight", max_advance="0.6000", make_default="on")
    form.pop("is_default", None)
    response = client.post(reverse("admin:financing_marginpolicy_add"), form, follow=True)
    assert "change only when a second risk officer approves" in response.content.decode()
    tight = MarginPolicy.objects.get(name="Tight")
    assert (tight.max_advance, tight.is_default) == (Decimal("0.6"), False)  # created, not the default
    assert default_policy() == standard
    (asked,) = ApprovalRequest.objects.filter(kind="margin_policy", status="pending")
    assert (asked.target_id, asked.proposed) == (str(tight.pk), {"is_default": True})
    # The default cannot be unticked either: the box is read-only (another policy becomes the default instead).
    unticked = _policy_form(standard)
    unticked.pop("is_default")
    client.post(reverse("admin:financing_marginpolicy_change", args=[standard.pk]), unticked, follow=True)
    assert MarginPolicy.objects.get(pk=standard.pk).is_default is True
