"""A client's own moves between their free holdings at the broker and their facility: pledge free holdings into
the pool, release pool collateral back to free holdings, repay from free cash. Each is the custody and
collateral services the API uses, joined in one database transaction, with an audit event of its own; each is
idempotent on the caller's key (a second submit returns what the first did); each refuses in words and writes
nothing when a rule says no (the pool's max advance, what is held free, the debt)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.audit import Actor, audit_event_record
from accounts.models import Client
from collateral.custody import custody_holding_receive, custody_holding_release
from collateral.models import Asset, CollateralMovement, CustodyMovement
from collateral.services import parse_quantity, pool_open
from core.exceptions import InvalidInput
from core.money import HKD
from core.parsing import parse_hkd
from financing import exceptions as refusals
from financing.lending.services import collateral_top_up, collateral_withdraw, repayment_create
from financing.models import Facility, Repayment
from financing.selectors import facility_pool

KEY_MAX_LENGTH = 64


def _reference(kind: str, idempotency_key: str) -> str:
    key = (idempotency_key or "").strip()
    if not key or len(key) > KEY_MAX_LENGTH:
        raise InvalidInput(f"idempotency_key: 1 to {KEY_MAX_LENGTH} characters are needed.")
    return f"{kind}:{key}"


@dataclass(frozen=True)
class Pledge:
    released: CustodyMovement  # out of the free holdings
    deposited: CollateralMovement  # into the pool


@transaction.atomic
def free_holdings_pledge(
    *, client: Client, asset: Asset, quantity: Any, actor: Actor, idempotency_key: str
) -> Pledge:
    """Move ``quantity`` of ``asset`` from the client's free holdings into their collateral pool: a release
    from free custody and a deposit into the pool, through custody clearing. An open margin call is looked at
    again at once (cured when the ratio is back at target). Refused when the client does not hold that much
    free, or the asset is not eligible collateral."""
    reference = _reference("pledge", idempotency_key)
    amount = parse_quantity(asset, quantity)
    released = custody_holding_release(
        client=client, asset=asset, quantity=amount, actor=actor, external_reference=reference
    )
    pool = pool_open(client=client, actor=actor)
    already = CollateralMovement.objects.filter(pool=pool, external_reference=reference).exists()
    deposited = collateral_top_up(
        pool=pool, asset=asset, quantity=amount, actor=actor, external_reference=reference
    )
    if not already:
        audit_event_record(
            actor=actor,
            action="free_holdings.pledged",
            target=pool,
            after={
                "asset": asset.symbol,
                "quantity": str(amount),
                "custody_movement": released.pk,
                "collateral_movement": deposited.pk,
            },
        )
    return Pledge(released=released, deposited=deposited)


@dataclass(frozen=True)
class Release:
    withdrawn: CollateralMovement  # out of the pool
    received: CustodyMovement  # into the free holdings


@transaction.atomic
def pool_release_to_free_holdings(
    *, client: Client, asset: Asset, quantity: Any, actor: Actor, idempotency_key: str
) -> Release:
    """Move ``quantity`` of ``asset`` from the client's pool back to their free holdings. Refused, as any
    withdrawal, when the pool does not hold it or the margin ratio would go above max advance."""
    reference = _reference("release", idempotency_key)
    amount = parse_quantity(asset, quantity)
    pool = pool_open(client=client, actor=actor)
    already = CollateralMovement.objects.filter(pool=pool, external_reference=reference).exists()
    withdrawn = collateral_withdraw(
        pool=pool, asset=asset, quantity=amount, actor=actor, external_reference=reference
    )
    received = custody_holding_receive(
        client=client, asset=asset, quantity=amount, actor=actor, external_reference=reference
    )
    if not already:
        audit_event_record(
            actor=actor,
            action="free_holdings.released_to",
            target=pool,
            after={
                "asset": asset.symbol,
                "quantity": str(amount),
                "collateral_movement": withdrawn.pk,
                "custody_movement": received.pk,
            },
        )
    return Release(withdrawn=withdrawn, received=received)


@transaction.atomic
def repayment_from_free_cash(
    *, facility: Facility, amount: Any, actor: Actor, idempotency_key: str
) -> Repayment:
    """Repay from the Hong Kong dollars the client holds free at the broker: the cash leaves the free
    holdings and repays fees, interest, then principal (``repayment_create``), in one transaction. Refused when
    the client holds less free cash, or when it is more than the debt."""
    reference = _reference("repay", idempotency_key)
    value = parse_hkd(amount, field="amount", positive=True).amount
    earlier = Repayment.objects.filter(transaction__idempotency_key=f"repayment:{reference}").first()
    if earlier is not None:
        return earlier
    if facility_pool(facility) is None:
        raise refusals.RepaymentRefused(
            _("%(facility)s has no collateral pool.") % {"facility": facility.reference}
        )
    hkd = Asset.objects.filter(pk=HKD).first()
    if hkd is None:
        raise refusals.RepaymentRefused(
            _("Hong Kong dollars are not on the asset list; nothing is held free.")
        )
    repayment = repayment_create(facility=facility, amount=value, actor=actor, idempotency_key=reference)
    released = custody_holding_release(
        client=facility.client, asset=hkd, quantity=value, actor=actor, external_reference=reference
    )
    audit_event_record(
        actor=actor,
        action="repayment.from_free_cash",
        target=facility,
        after={"amount": str(value), "repayment": repayment.pk, "custody_movement": released.pk},
    )
    return repayment
