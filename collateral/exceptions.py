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
