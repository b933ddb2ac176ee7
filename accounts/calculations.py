"""Professional-investor eligibility, as pure functions (no ORM): what the Securities and Futures
(Professional Investor) Rules ask, in words a credit officer reads."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.enums import ClientKind, KycStatus


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        return "eligible" if self.eligible else "; ".join(self.reasons)


def _hkd(amount: Decimal) -> str:
    return f"HK${amount:,.0f}"


def professional_investor_shortfalls(
    *,
    kind: str,
    portfolio_value: Decimal | None,
    total_assets: Decimal | None,
    portfolio_threshold: Decimal,
    total_assets_threshold: Decimal,
) -> list[str]:
    """Why a client does not meet the professional-investor thresholds (empty when it does).

    individual: portfolio >= 8m; corporation or partnership: portfolio >= 8m or total assets >= 40m;
    trust corporation: total assets >= 40m.
    """
    portfolio_ok = portfolio_value is not None and portfolio_value >= portfolio_threshold
    assets_ok = total_assets is not None and total_assets >= total_assets_threshold
    portfolio_words = "not given" if portfolio_value is None else _hkd(portfolio_value)
    assets_words = "not given" if total_assets is None else _hkd(total_assets)
    if kind == ClientKind.INDIVIDUAL:
        if portfolio_ok:
            return []
        return [
            f"an individual needs a portfolio of at least {_hkd(portfolio_threshold)}; "
            f"the evidence shows {portfolio_words}"
        ]
    if kind in (ClientKind.CORPORATION, ClientKind.PARTNERSHIP):
        if portfolio_ok or assets_ok:
            return []
        label = ClientKind(kind).label.lower()
        return [
            f"a {label} needs a portfolio of at least {_hkd(portfolio_threshold)} or total assets of at "
            f"least {_hkd(total_assets_threshold)}; the evidence shows a portfolio of {portfolio_words} "
            f"and total assets of {assets_words}"
        ]
    if kind == ClientKind.TRUST_CORPORATION:
        if assets_ok:
            return []
        return [
            f"a trust corporation needs total assets of at least {_hkd(total_assets_threshold)}; "
            f"the evidence shows {assets_words}"
        ]
    raise ValueError(f"unknown client kind {kind!r}")


def financing_eligibility(
    *,
    kind: str,
    kyc_status: str,
    portfolio_value: Decimal | None,
    total_assets: Decimal | None,
    assessed_on: datetime.date | None,
    expires_on: datetime.date | None,
    today: datetime.date,
    portfolio_threshold: Decimal,
    total_assets_threshold: Decimal,
) -> Eligibility:
    reasons: list[str] = []
    if kyc_status != KycStatus.APPROVED:
        reasons.append(f"KYC is {KycStatus(kyc_status).label.lower()}, not approved")
    if assessed_on is None:
        reasons.append("there is no professional-investor assessment")
    else:
        if expires_on is not None and expires_on < today:
            reasons.append(f"the professional-investor assessment expired on {expires_on.isoformat()}")
        reasons.extend(
            professional_investor_shortfalls(
                kind=kind,
                portfolio_value=portfolio_value,
                total_assets=total_assets,
                portfolio_threshold=portfolio_threshold,
                total_assets_threshold=total_assets_threshold,
            )
        )
    return Eligibility(eligible=not reasons, reasons=tuple(reasons))
