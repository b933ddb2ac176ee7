import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from djmoney.money import Money

from accounts import services
from accounts.enums import ClientKind
from accounts.models import AuditEvent, Client
from core.exceptions import InvalidInput
from tests.accounts.factories import ClientFactory, StaffFactory
from tests.helpers import writes_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer():
    return StaffFactory(role="Credit officer")


def test_client_create_records_the_client_and_an_audit_event(officer):
    client = services.client_create(
        actor=officer,
        name="Harbour View Capital Ltd",
        kind=ClientKind.CORPORATION,
        pi_portfolio_value="45000000.00",
        pi_assessed_on=datetime.date(2026, 11, 1),
    )
    client.refresh_from_db()
    assert client.reference == f"C{client.pk:06d}"
    assert client.pi_portfolio_value == Money(Decimal("45000000.00"), "HKD")
    assert client.pi_expires_on == datetime.date(2027, 11, 1)  # assessed + 365 days by default
    event = AuditEvent.objects.get(action="client.created")
    assert event.actor == officer
    assert event.target_id == str(client.pk)
    assert event.after["pi_portfolio_value"] == {"amount": "45000000.00", "currency": "HKD"}
    assert event.before is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pi_portfolio_value", "-1.00", "pi_portfolio_value: cannot be negative (-1.00)."),
        ("pi_total_assets", "-0.01", "pi_total_assets: cannot be negative (-0.01)."),
        (
            "pi_portfolio_value",
            "abc",
            "pi_portfolio_value: 'abc' is not an amount (plain digits with an optional decimal point, e.g. 1250.50).",
        ),
        ("pi_portfolio_value", "1.001", "pi_portfolio_value: 1.001 has more than 2 decimal places."),
    ],
)
def test_client_create_refuses_bad_evidence_and_writes_nothing(officer, field, value, message):
    with writes_nothing(), pytest.raises(InvalidInput) as refusal:
        services.client_create(actor=officer, name="Bad Ltd", kind=ClientKind.CORPORATION, **{field: value})
    assert str(refusal.value) == message


def test_client_create_refuses_float_amounts(officer):
    with writes_nothing(), pytest.raises(InvalidInput, match="floats are not accepted"):
        services.client_create(
            actor=officer, name="Float Ltd", kind=ClientKind.CORPORATION, pi_portfolio_value=1.5
        )


def test_client_create_refuses_an_unknown_kind_with_the_field_named(officer):
    with writes_nothing(), pytest.raises(InvalidInput) as refusal:
        services.client_create(actor=officer, name="X", kind="sole_trader")
    assert "kind" in refusal.value.details
    assert "sole_trader" in str(refusal.value)


def test_client_create_refuses_an_assessment_that_expires_before_it_is_made(officer):
    with writes_nothing(), pytest.raises(InvalidInput, match="cannot expire before it is made"):
        services.client_create(
            actor=officer,
            name="Y",
            kind=ClientKind.INDIVIDUAL,
            pi_assessed_on=datetime.date(2026, 1, 2),
            pi_expires_on=datetime.date(2026, 1, 1),
        )


def test_negative_portfolio_is_refused_by_the_database_too():
    client = ClientFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Client.objects.filter(pk=client.pk).update(pi_portfolio_value=Decimal("-5"))


def test_client_update_audits_only_what_changed(officer):
    client = ClientFactory(email="old@client.example")
    services.client_update(client=client, actor=officer, email="new@client.example", name=client.name)
    event = AuditEvent.objects.get(action="client.updated")
    assert event.before == {"email": "old@client.example"}
    assert event.after == {"email": "new@client.example"}
    client.refresh_from_db()
    assert client.email == "new@client.example"


def test_client_update_with_no_change_writes_nothing(officer):
    client = ClientFactory()
    with writes_nothing():
        services.client_update(client=client, actor=officer, name=client.name)


def test_client_eligibility_reads_the_model():
    client = ClientFactory(
        kind=ClientKind.INDIVIDUAL,
        pi_portfolio_value=Money("7000000", "HKD"),
        pi_assessed_on=datetime.date(2026, 1, 1),
        pi_expires_on=datetime.date(2026, 6, 30),
    )
    result = client.eligibility(today=datetime.date(2026, 11, 25))
    assert not result.eligible
    assert result.reasons == (
        "the professional-investor assessment expired on 2026-06-30",
        "an individual needs a portfolio of at least HK$8,000,000; the evidence shows HK$7,000,000",
    )


def test_client_user_cannot_be_staff(officer):
    client = ClientFactory()
    user = services.client_user_create(
        client=client, username="portal1", password="a-long-password-1", email="p@c.example", actor=officer
    )
    assert user.is_client_user
    assert not user.is_staff
    user.is_staff = True
    with pytest.raises(IntegrityError, match="client_user_is_not_staff"), transaction.atomic():
        user.save()


def test_an_absurdly_large_amount_is_refused_in_words(officer):
    with writes_nothing(), pytest.raises(InvalidInput, match="too large"):
        services.client_create(
            actor=officer, name="Huge Ltd", kind=ClientKind.CORPORATION, pi_portfolio_value="1" + "0" * 40
        )
