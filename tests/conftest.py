import os

import psycopg
import pytest
from django.conf import settings


def pytest_report_header(config):
    database = settings.DATABASES["default"]
    try:
        with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as connection:
            version = connection.execute("SELECT version()").fetchone()[0]
    except Exception as error:  # the header must never stop the run; the tests will say what is wrong
        version = f"unreachable ({error})"
    return [f"database: {database['ENGINE'].rsplit('.', 1)[-1]} — {version}"]


@pytest.fixture
def market(db):
    """The standard assets with prices: BTC US$100,000, ETH US$4,000, Tencent HK$400, HSBC HK$100,
    USD/HKD 7.8."""
    from tests.collateral.factories import standard_market

    return standard_market()
