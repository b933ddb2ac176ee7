"""Collateral test fixtures: fake venues for the price oracle, and a guard that keeps every test here
on loopback (the oracle must never reach a real exchange from the test suite)."""

from __future__ import annotations

import ipaddress
import socket
from decimal import Decimal

import pytest

from fake_exchange.pytest_plugin import fake_venues  # noqa: F401  (a fixture)


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _loopback_only(address) -> None:
    if isinstance(address, tuple) and not _is_loopback(address[0]):  # AF_UNIX addresses are paths
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address[0]}")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback(host):
            raise socket.gaierror(f"tests may only look up loopback names, not {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        _loopback_only(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _loopback_only(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def venue_config(fake, *, timeout_ms: int = 2000, markets=None) -> dict:
    return {
        "name": fake.name,
        "exchange": fake.venue.name,
        "base_url": fake.base_url,
        "timeout_ms": timeout_ms,
        "markets": markets or {"BTC": "BTC/USD", "ETH": "ETH/USD"},
    }


def point_oracle_at(settings, fakes, **config) -> None:
    """The oracle's rules for these tests: 60 s staleness, a 5% band, a quorum of 2."""
    settings.PRICE_VENUES = [venue_config(fake, **config) for fake in fakes]
    settings.PRICE_STALENESS_SECONDS = 60
    settings.PRICE_BAND = Decimal("0.05")
    settings.PRICE_QUORUM = 2


@pytest.fixture
def oracle(settings, fake_venues, market):  # noqa: F811
    """Three fake venues (bitstamp-1, bitstamp-2, kraken-1) at BTC/USD 98000 and ETH/USD 3400 with the
    oracle pointed at them. The standard market is recorded (BTC US$100,000, ETH US$4,000) as the last
    good prices."""
    point_oracle_at(settings, fake_venues)
    return fake_venues
