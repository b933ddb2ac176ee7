from core.exceptions import DomainError


class UnsupportedCrypto(DomainError):
    code = "unsupported_crypto"
    api_status = 422


class HaircutBelowFloor(DomainError):
    code = "haircut_below_floor"
    api_status = 422


class AssetNotEligible(DomainError):
    code = "asset_not_eligible"
    api_status = 422


class PriceMissing(DomainError):
    code = "price_missing"
    api_status = 422


class InsufficientCustodyHoldings(DomainError):
    code = "insufficient_holdings"
    api_status = 422


class CustodyReferenceConflict(DomainError):
    """A custody reference already recorded for a different movement of the same client."""

    code = "external_reference_conflict"
    api_status = 409
