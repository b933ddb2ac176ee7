"""Margin policies: what the model and the database refuse."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from financing.models import MarginPolicy


def test_a_policy_gives_at_least_one_business_day_to_cure(db):
    """A count of 0 would break the margin-call ladder (the calendar counts cure days from 1): the model
    refuses it, and so does the database when the model's checks are bypassed."""
    policy = MarginPolicy(name="Same day", cure_business_days=0)
    with pytest.raises(ValidationError) as refused:
        policy.full_clean()
    assert refused.value.message_dict["cure_business_days"] == [
        "Ensure this value is greater than or equal to 1."
    ]
    with pytest.raises(IntegrityError, match="policy_cure_at_least_one_business_day"):
        policy.save()


def test_a_policy_of_one_business_day_is_accepted(db):
    policy = MarginPolicy(name="Next day", cure_business_days=1)
    policy.full_clean()
    policy.save()
    assert MarginPolicy.objects.get(name="Next day").cure_business_days == 1
