import contextlib
import os

import environ
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import TransactionTestCase


def pytest_report_header(config):
    database = settings.DATABASES["default"]
    try:
        with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as conn:
            version = conn.execute("SELECT version()").fetchone()[0]
    except Exception as error:  # the header must never stop the run; the tests will say what is wrong
        version = f"unreachable ({error})"
    return [
        f"database: {database['ENGINE'].rsplit('.', 1)[-1]} — {version}",
        f"database roles: the tests connect as {database['USER']!r}; migrations ran as the owner "
        f"({database_owner_credentials()[0] or 'the same role'})",
    ]


# --- two database roles: the owner migrates, the tests run as the application (docs/database-roles.md) ----


def database_owner_credentials() -> tuple[str, str]:
    """The owner's user and password, from DATABASE_OWNER_URL (empty when the suite runs with one role)."""
    url = os.environ.get("DATABASE_OWNER_URL")
    if not url:
        return "", ""
    config = environ.Env.db_url_config(url)
    return config["USER"], config.get("PASSWORD", "")


@contextlib.contextmanager
def connected_as_owner():
    """The default connection as the owner of the tables for the block: closed, its credentials switched, and
    switched back (and closed) after. Only between transactions: what an open one did would be lost."""
    user, password = database_owner_credentials()
    if not user:
        yield
        return
    saved = connection.settings_dict["USER"], connection.settings_dict["PASSWORD"]
    connection.close()
    connection.settings_dict["USER"], connection.settings_dict["PASSWORD"] = user, password
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["USER"], connection.settings_dict["PASSWORD"] = saved


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    """pytest-django creates and migrates the test database with the default connection: as the owner."""
    user, password = database_owner_credentials()
    if user:
        settings.DATABASES["default"]["APP_USER"] = (
            settings.DATABASES["default"]["USER"],
            settings.DATABASES["default"]["PASSWORD"],
        )
        settings.DATABASES["default"]["USER"], settings.DATABASES["default"]["PASSWORD"] = user, password


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Once the test database is built (and ``migrate`` granted the application's role its privileges), the
    tests connect as the application's role; the owner takes the database back to drop it."""
    app_user = settings.DATABASES["default"].pop("APP_USER", None)
    if app_user is None:
        yield
        return
    owner = settings.DATABASES["default"]["USER"], settings.DATABASES["default"]["PASSWORD"]
    with django_db_blocker.unblock():
        connection.close()
    settings.DATABASES["default"]["USER"], settings.DATABASES["default"]["PASSWORD"] = app_user
    yield
    with django_db_blocker.unblock():
        connection.close()
    settings.DATABASES["default"]["USER"], settings.DATABASES["default"]["PASSWORD"] = owner


# A transactional test ends by emptying every table (TRUNCATE), which the application's role may not do: the
# owner does it, between tests.
_fixture_teardown = TransactionTestCase._fixture_teardown


def _fixture_teardown_as_owner(self):
    with connected_as_owner():
        _fixture_teardown(self)


TransactionTestCase._fixture_teardown = _fixture_teardown_as_owner


@pytest.fixture
def database_owner(transactional_db):
    """A transactional test that needs the owner (migrating, say) connects as the owner throughout."""
    with connected_as_owner():
        yield


@pytest.fixture
def market(db):
    """The standard assets with prices: BTC US$100,000, ETH US$4,000, Tencent HK$400, HSBC HK$100,
    USD/HKD 7.8."""
    from tests.collateral.factories import standard_market

    return standard_market()
