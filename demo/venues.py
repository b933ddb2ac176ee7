"""The demo's venues: three fake exchanges on fixed loopback ports (started by Procfile.dev with
``manage.py run_fake_exchange``), read by the local and test settings as their default PRICE_VENUES and
FORCED_SALE_VENUE. Plain data, so settings can import it before Django is set up."""

DEMO_MARKETS = {"BTC": "BTC/USD", "ETH": "ETH/USD"}

DEMO_PRICE_VENUES = [
    {
        "name": "bitstamp-1",
        "exchange": "bitstamp",
        "base_url": "http://127.0.0.1:8801/api",
        "timeout_ms": 5000,
        "markets": dict(DEMO_MARKETS),
    },
    {
        "name": "bitstamp-2",
        "exchange": "bitstamp",
        "base_url": "http://127.0.0.1:8802/api",
        "timeout_ms": 5000,
        "markets": dict(DEMO_MARKETS),
    },
    {
        "name": "kraken-1",
        "exchange": "kraken",
        "base_url": "http://127.0.0.1:8803",
        "timeout_ms": 5000,
        "markets": dict(DEMO_MARKETS),
    },
]

# The demo sells on its first fake venue, with credentials of the right shape (the fake accepts any).
DEMO_FORCED_SALE_VENUE = {
    "name": "bitstamp-1",
    "exchange": "bitstamp",
    "base_url": "http://127.0.0.1:8801/api",
    "api_key": "demo-key",
    "secret": "ZGVtby1zZWNyZXQ=",
    "timeout_ms": 5000,
    "order_type": "limit",
    "markets": dict(DEMO_MARKETS),
}
