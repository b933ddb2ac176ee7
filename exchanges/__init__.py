"""The platform's adapter for crypto venues through ``ccxt``: which venues are supported, how a client
is built, and the venue settings checked. Plain Python over Django settings; see docs/exchanges.md."""

from exchanges.clients import SUPPORTED_EXCHANGES, exchange_client, is_loopback_url, markets_forget
from exchanges.venues import MAX_TIMEOUT_MS, PriceVenue, SaleVenueConfig, price_venues, sale_venue_config

__all__ = [
    "MAX_TIMEOUT_MS",
    "SUPPORTED_EXCHANGES",
    "PriceVenue",
    "SaleVenueConfig",
    "exchange_client",
    "is_loopback_url",
    "markets_forget",
    "price_venues",
    "sale_venue_config",
]
