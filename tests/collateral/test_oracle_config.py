"""The oracle's rules: a mistake stops the refresh with a clear message, never a quiet guess. (The venues
themselves are checked by the exchanges adapter: tests/exchanges/test_venues.py.)"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from collateral.oracle import oracle_rules, price_venues


def test_the_default_rules_fit_the_default_venues():
    rules = oracle_rules(price_venues())
    assert (rules.staleness.total_seconds(), rules.band, rules.quorum) == (60, Decimal("0.05"), 2)


def test_a_quorum_larger_than_the_venues_would_make_every_price_stale(settings):
    settings.PRICE_QUORUM = 4
    with pytest.raises(ImproperlyConfigured, match="PRICE_QUORUM is 4 but only 3 venue"):
        oracle_rules(price_venues())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PRICE_BAND", Decimal("1.5"), "PRICE_BAND must be a fraction between 0 and 1"),
        ("PRICE_BAND", Decimal("0"), "PRICE_BAND must be a fraction between 0 and 1"),
        ("PRICE_QUORUM", 0, "PRICE_QUORUM must be a whole number of at least 1"),
        ("PRICE_STALENESS_SECONDS", 0, "PRICE_STALENESS_SECONDS must be a whole number"),
    ],
)
def test_bad_rules_are_refused(settings, name, value, message):
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        oracle_rules()
