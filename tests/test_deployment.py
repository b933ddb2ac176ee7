"""The production settings: `manage.py check --deploy` finds nothing, HTTPS is enforced, the proxy header is
believed only behind a proxy, and the platform does not start without venues."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

VENUES = [
    {"name": "bitstamp", "exchange": "bitstamp", "markets": {"BTC": "BTC/USD", "ETH": "ETH/USD"}},
    {"name": "kraken", "exchange": "kraken", "markets": {"BTC": "BTC/USD", "ETH": "ETH/USD"}},
]
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "k7Qv2pXz9LmN4rT8wY1cF6hJ3sD0gB5nE7uI2oP9aZ4xC6vR8tW1yQ3mK5lH0jG",
    "DJANGO_ALLOWED_HOSTS": "margin.broker.example",
    "DATABASE_URL": "postgres://margin@127.0.0.1:9/margin",  # nothing is connected to
    "CELERY_BROKER_URL": "redis://127.0.0.1:9/0",
    "PRICE_VENUES": json.dumps(VENUES),
    "FORCED_SALE_VENUE": json.dumps(VENUES[0]),
    "PATH": "/usr/bin:/bin",
}


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env={**PRODUCTION, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def setting(name: str, **env: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print(repr(settings.{name}))"
    result = run("-c", code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_check_deploy_reports_nothing():
    result = run("manage.py", "check", "--deploy", "--fail-level", "DEBUG")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_https_is_enforced_with_hsts():
    assert setting("SECURE_SSL_REDIRECT") == "True"
    assert setting("SECURE_HSTS_SECONDS") == str(365 * 24 * 3600)
    assert setting("SECURE_HSTS_INCLUDE_SUBDOMAINS") == "True"


def test_the_proxy_header_is_believed_only_behind_a_proxy():
    assert setting("SECURE_PROXY_SSL_HEADER") == "None"
    assert (
        setting("SECURE_PROXY_SSL_HEADER", DJANGO_BEHIND_PROXY="true")
        == "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"PRICE_VENUES": "[]"}, "PRICE_VENUES must be a non-empty JSON list of venues."),
        ({"PRICE_VENUES": json.dumps(VENUES[:1])}, "fewer than PRICE_QUORUM (2)"),
        ({"FORCED_SALE_VENUE": "{}"}, "FORCED_SALE_VENUE needs exchange, markets, name."),
    ],
)
def test_production_refuses_to_start_without_venues(env, reason):
    result = run("-c", "import django; django.setup()", **env)
    assert result.returncode != 0
    assert reason in result.stderr
