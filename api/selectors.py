"""Reads for API keys."""

from __future__ import annotations

import hmac

from api.models import ApiKey
from api.services import KEY_MARK, api_key_digest


def api_key_find(raw_key: str) -> ApiKey | None:
    """The key (revoked or not) that ``raw_key`` is, or None. Looked up by its prefix, then compared in
    constant time with the stored digest."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARK:
        return None
    api_key = ApiKey.objects.filter(prefix=f"{parts[0]}_{parts[1]}").first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, api_key_digest(raw_key)):
        return None
    return api_key
