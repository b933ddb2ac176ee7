"""Migrations that move data, run on rows written by the models as they were before."""

import datetime
from decimal import Decimal

import pytest

BEFORE = ("financing", "0015_wording_functions")
AFTER = ("financing", "0016_margin_state_holds_the_sweep_inputs")
NOW = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC)


def facility_with_state(
    apps, number: int, *, status: str = "active", policy=None, part: dict | None = None, client=None
):
    """A facility valued once (a margin state), as the models stood before, for a new client with a pool (or
    for ``client``, whose pool it shares); and, when ``part`` is given, the pool's stored fixed part."""
    Client = apps.get_model("accounts", "Client")
    Account = apps.get_model("ledger", "Account")
    CollateralPool = apps.get_model("collateral", "CollateralPool")
    Facility = apps.get_model("financing", "Facility")
    MarginState = apps.get_model("financing", "MarginState")
    kinds = ["loan_principal", "interest_receivable", "fees_receivable"]
    if client is None:
        client = Client.objects.create(reference=f"M{number}", name=f"Client {number}", kind="corporation")
        kinds.append("collateral")
    accounts = {
        kind: Account.objects.create(code=f"{kind}:M{number}", kind=kind, client=client, name=kind)
        for kind in kinds
    }
    pool = CollateralPool.objects.filter(client=client).first() or CollateralPool.objects.create(
        client=client, account=accounts["collateral"]
    )
    facility = Facility.objects.create(
        reference=f"FM{number}", client=client, limit=Decimal("1000000"), fixed_rate=Decimal("0.065"),
        policy=policy, status=status, opened_on=NOW.date(), principal_account=accounts["loan_principal"],
        interest_account=accounts["interest_receivable"], fees_account=accounts["fees_receivable"],
    )  # fmt: skip
    MarginState.objects.create(
        facility=facility, market_value=Decimal("100.00"), margin_value=Decimal("60.00"), debt=Decimal("30.00"),
        margin_ratio=Decimal("0.5"), status="ok", notified_status="ok", valued_at=NOW, status_since=NOW,
    )  # fmt: skip
    if part is not None:
        apps.get_model("financing", "PoolFixedPart").objects.create(pool=pool, valued_at=NOW, **part)
    return facility


def test_the_sweep_inputs_move_onto_the_margin_states(migrator):
    """Each state takes its facility's policy and whether it is open; an open facility's state takes its
    pool's fixed part; a closed facility's does not (its client's next facility works the part out again)."""
    old = migrator.apply_initial_migration(BEFORE)
    policy = old.apps.get_model("financing", "MarginPolicy").objects.create(
        name="Tight", max_advance=Decimal("0.7"), warning=Decimal("0.8"), margin_call=Decimal("0.9"),
        forced_sale=Decimal("1.1"), target=Decimal("0.7"),
    )  # fmt: skip
    part = {"basis": "b" * 64, "market_value": Decimal("400000.00"), "margin_value": Decimal("280000.00"),
            "uncapped_from": Decimal("60000.00"), "crypto": {"BTC": "1.00000000"}}  # fmt: skip
    with_part = facility_with_state(old.apps, 1, policy=policy, part=part)
    without_part = facility_with_state(old.apps, 2)
    closed = facility_with_state(old.apps, 3, status="closed", part=part)
    back = facility_with_state(old.apps, 4, status="closed")  # a client back with a new facility: one pool
    reopened = facility_with_state(old.apps, 5, client=back.client, part=part)

    new = migrator.apply_tested_migration(AFTER)
    states = {s.facility_id: s for s in new.apps.get_model("financing", "MarginState").objects.all()}
    moved = states[with_part.pk]
    assert (moved.policy_id, moved.open) == (policy.pk, True)
    assert (moved.fixed_basis, moved.fixed_market_value, moved.fixed_margin_value, moved.fixed_uncapped_from,
            moved.fixed_crypto, moved.fixed_valued_at) == ("b" * 64, Decimal("400000.00"), Decimal("280000.00"),
                                                           Decimal("60000.00"), {"BTC": "1.00000000"}, NOW)  # fmt: skip
    none = states[without_part.pk]
    assert (none.policy_id, none.open, none.fixed_basis, none.fixed_crypto) == (None, True, "", None)
    gone = states[closed.pk]
    assert (gone.open, gone.fixed_basis, gone.fixed_crypto) == (False, "", None)
    assert (states[back.pk].open, states[back.pk].fixed_crypto) == (False, None)  # the part is the open one's
    assert (states[reopened.pk].open, states[reopened.pk].fixed_crypto) == (True, {"BTC": "1.00000000"})
    with pytest.raises(LookupError):
        new.apps.get_model("financing", "PoolFixedPart")
