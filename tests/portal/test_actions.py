"""The client's actions: preview, confirmation, refusal in words with nothing written, and a second submit
that does nothing twice."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from collateral.custody import custody_holding_receive
from collateral.selectors import custody_holdings, pool_holdings
from financing.enums import InstructionStatus
from financing.models import Drawdown, Repayment, StandingTopUpInstruction
from financing.selectors import facility_debt, facility_pool
from tests.collateral.factories import asset
from tests.helpers import login_as, writes_nothing

pytestmark = pytest.mark.django_db


def url(facility, slug):
    return reverse("portal:action", args=[facility.pk, slug])


def post(client, facility, slug, step, **data):
    response = client.post(url(facility, slug), {"token": "t1", "step": step, **data})
    return response, response.content.decode()


def free(client_record, symbol, quantity):
    custody_holding_receive(
        client=client_record,
        asset=asset(symbol),
        quantity=quantity,
        actor=SYSTEM,
        external_reference=f"in-{symbol}",
    )


def test_a_drawdown_above_max_advance_is_refused_in_words_and_nothing_is_written(signed_in, facility):
    with writes_nothing():
        response, html = post(signed_in, facility, "draw-down", "preview", amount="1000")
    assert response.status_code == 200
    assert "This would be refused" in html
    assert "above the max advance of 85.00%" in html
    with writes_nothing():
        _, html = post(signed_in, facility, "draw-down", "confirm", amount="1000")
    assert "Not done" in html


def test_a_refusal_is_shown_in_traditional_chinese(signed_in, facility):
    signed_in.cookies["django_language"] = "zh-hant"
    with writes_nothing():
        response, html = post(signed_in, facility, "draw-down", "preview", amount="1000")
    assert response.status_code == 200
    assert "超過最高貸款比率 85.00%" in html  # the service's own refusal, translated
    assert "above the max advance" not in html


def test_a_drawdown_is_previewed_then_made_once_however_often_it_is_confirmed(signed_in, facility):
    free(facility.client, "ETH", "10")
    post(signed_in, facility, "pledge", "confirm", asset="ETH", quantity="10")  # LV + 109,200
    with writes_nothing():
        _, html = post(signed_in, facility, "draw-down", "preview", amount="50000", token="dd")
    assert "Within limits — 74.8%" in html  # 315,200 / 421,200 (BTC 312,000 + ETH 109,200)
    assert 'name="step" value="confirm"' in html
    for _ in range(2):
        response = signed_in.post(
            url(facility, "draw-down"), {"token": "dd", "step": "confirm", "amount": "50000"}
        )
        assert response["Location"] == reverse("portal:overview", args=[facility.pk])
    assert Drawdown.objects.filter(facility=facility).count() == 2  # the first one, and this one
    assert facility_debt(facility).principal == Decimal("315200.00")


def test_repaying_from_free_cash_moves_the_cash_and_is_made_once(signed_in, facility):
    free(facility.client, "HKD", "50000")
    with writes_nothing():
        _, html = post(signed_in, facility, "repay", "preview", amount="65200")
    assert "holds 50000 HKD free in custody" in html
    _, html = post(signed_in, facility, "repay", "preview", amount="10000")
    assert "Within limits — 81.8%" in html  # 255,200 / 312,000
    for _ in range(2):
        signed_in.post(url(facility, "repay"), {"token": "r1", "step": "confirm", "amount": "10000"})
    assert Repayment.objects.filter(facility=facility).count() == 1
    assert facility_debt(facility).principal == Decimal("255200.00")
    assert custody_holdings(facility.client) == {"HKD": Decimal("40000.00")}
    assert AuditEvent.objects.filter(action="repayment.from_free_cash").count() == 1


def test_pledging_and_releasing_move_between_free_holdings_and_the_pool(signed_in, facility):
    free(facility.client, "BTC", "1")
    for _ in range(2):
        post(signed_in, facility, "pledge", "confirm", asset="BTC", quantity="0.5")
    pool = facility_pool(facility)
    assert pool_holdings(pool)["BTC"] == Decimal("1.5")
    assert custody_holdings(facility.client)["BTC"] == Decimal("0.5")
    assert AuditEvent.objects.filter(action="free_holdings.pledged").count() == 1
    with writes_nothing():  # back to 1 BTC is fine (85%); 1.1 BTC out is not
        _, html = post(signed_in, facility, "release", "preview", asset="BTC", quantity="0.6", token="r")
    assert "above the max advance" in html
    post(signed_in, facility, "release", "confirm", asset="BTC", quantity="0.5", token="r")
    assert pool_holdings(pool)["BTC"] == Decimal("1")
    assert custody_holdings(facility.client)["BTC"] == Decimal("1")


def test_a_pledge_of_more_than_is_held_free_is_refused(signed_in, facility):
    free(facility.client, "BTC", "0.1")
    with writes_nothing():
        _, html = post(signed_in, facility, "pledge", "confirm", asset="BTC", quantity="0.2")
    assert "cannot be released" in html


def test_the_standing_instruction_is_asked_for_once_and_stopped(signed_in, facility):
    asset("ETH")
    for _ in range(2):
        post(signed_in, facility, "instruction", "confirm", switch="on", asset_order=["BTC", "ETH"])
    instruction = StandingTopUpInstruction.objects.get()
    assert (instruction.status, instruction.asset_order) == (
        InstructionStatus.PENDING_SIGN_OFF,
        ["BTC", "ETH"],
    )
    for _ in range(2):
        post(signed_in, facility, "instruction", "confirm", switch="off", token="t2")
    instruction.refresh_from_db()
    assert instruction.status == InstructionStatus.REVOKED
    assert StandingTopUpInstruction.objects.count() == 1


def test_a_bad_amount_is_refused_by_the_form_and_nothing_is_written(signed_in, facility):
    with writes_nothing():
        response, html = post(signed_in, facility, "draw-down", "confirm", amount="-5")
    assert response.status_code == 200
    assert "errorlist" in html


@pytest.mark.parametrize("slug", ["draw-down", "repay", "pledge", "release", "instruction"])
def test_another_client_s_facility_takes_no_action(client, facility, stranger, slug):
    login_as(client, stranger)
    free(facility.client, "HKD", "1000")
    with writes_nothing():
        assert client.get(url(facility, slug)).status_code == 404
        response = client.post(
            url(facility, slug), {"token": "x", "step": "confirm", "amount": "10", "switch": "on"}
        )
        assert response.status_code == 404


def test_every_action_page_opens(signed_in, facility):
    assert signed_in.get(reverse("portal:actions", args=[facility.pk])).status_code == 200
    for slug in ["draw-down", "repay", "pledge", "release", "instruction"]:
        assert signed_in.get(url(facility, slug)).status_code == 200
    assert signed_in.get(url(facility, "nothing")).status_code == 404
