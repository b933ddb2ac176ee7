import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.calculations import financing_eligibility, professional_investor_shortfalls
from accounts.enums import ClientKind, KycStatus

EIGHT_M = Decimal("8000000")
FORTY_M = Decimal("40000000")
TODAY = datetime.date(2026, 11, 25)


def shortfalls(kind, portfolio=None, assets=None):
    return professional_investor_shortfalls(
        kind=kind,
        portfolio_value=portfolio,
        total_assets=assets,
        portfolio_threshold=EIGHT_M,
        total_assets_threshold=FORTY_M,
    )


@pytest.mark.parametrize(
    ("kind", "portfolio", "assets", "eligible"),
    [
        (ClientKind.INDIVIDUAL, "8000000", None, True),
        (ClientKind.INDIVIDUAL, "7999999.99", None, False),
        (ClientKind.INDIVIDUAL, None, "100000000", False),  # total assets do not count for individuals
        (ClientKind.CORPORATION, "8000000", None, True),
        (ClientKind.CORPORATION, "1", "40000000", True),
        (ClientKind.CORPORATION, "7999999.99", "39999999.99", False),
        (ClientKind.PARTNERSHIP, None, "40000000", True),
        (ClientKind.PARTNERSHIP, "7999999", None, False),
        (ClientKind.TRUST_CORPORATION, None, "40000000", True),
        (ClientKind.TRUST_CORPORATION, "100000000", "39999999.99", False),  # portfolio does not count
    ],
)
def test_professional_investor_thresholds(kind, portfolio, assets, eligible):
    result = shortfalls(
        kind,
        Decimal(portfolio) if portfolio else None,
        Decimal(assets) if assets else None,
    )
    assert (result == []) is eligible


def test_shortfall_is_explained_in_words():
    (reason,) = shortfalls(ClientKind.INDIVIDUAL, Decimal("5000000"))
    assert reason == (
        "an individual needs a portfolio of at least HK$8,000,000; the evidence shows HK$5,000,000"
    )
    (reason,) = shortfalls(ClientKind.TRUST_CORPORATION, None, None)
    assert (
        reason
        == "a trust corporation needs total assets of at least HK$40,000,000; the evidence shows not given"
    )


def eligibility(**overrides):
    arguments = {
        "kind": ClientKind.INDIVIDUAL,
        "kyc_status": KycStatus.APPROVED,
        "portfolio_value": Decimal("9000000"),
        "total_assets": None,
        "assessed_on": TODAY - datetime.timedelta(days=10),
        "expires_on": TODAY + datetime.timedelta(days=355),
        "today": TODAY,
        "portfolio_threshold": EIGHT_M,
        "total_assets_threshold": FORTY_M,
    } | overrides
    return financing_eligibility(**arguments)


def test_eligible_client():
    result = eligibility()
    assert result.eligible
    assert result.reasons == ()


def test_expired_assessment_is_not_eligible():
    result = eligibility(expires_on=TODAY - datetime.timedelta(days=1))
    assert not result.eligible
    assert result.reasons == ("the professional-investor assessment expired on 2026-11-24",)


def test_assessment_expiring_today_is_still_valid():
    assert eligibility(expires_on=TODAY).eligible


def test_every_reason_is_listed():
    result = eligibility(
        kyc_status=KycStatus.PENDING,
        portfolio_value=Decimal("1"),
        expires_on=TODAY - datetime.timedelta(days=1),
    )
    assert result.reasons == (
        "KYC is pending, not approved",
        "the professional-investor assessment expired on 2026-11-24",
        "an individual needs a portfolio of at least HK$8,000,000; the evidence shows HK$1",
    )


def test_no_assessment():
    assert eligibility(assessed_on=None, expires_on=None).reasons == (
        "there is no professional-investor assessment",
    )


@given(
    kind=st.sampled_from(list(ClientKind)),
    portfolio=st.none() | st.decimals(min_value=0, max_value=10**12, places=2),
    assets=st.none() | st.decimals(min_value=0, max_value=10**12, places=2),
)
def test_more_evidence_never_makes_a_client_ineligible(kind, portfolio, assets):
    before = shortfalls(kind, portfolio, assets) == []
    richer = (
        shortfalls(
            kind,
            None if portfolio is None else portfolio + 1,
            None if assets is None else assets + 1,
        )
        == []
    )
    assert richer or not before
