"""The application connects as a role that can do only what the application does: the bypasses of the
append-only rules an owner of the tables has (TRUNCATE, disabling triggers, the replication role) and any
write to the balance projection are refused to it. (``make test`` runs the whole suite as that role.)"""

from decimal import Decimal

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from accounts.audit import SYSTEM, audit_event_record
from ledger.enums import AccountKind, TransactionKind
from ledger.models import Balance, Leg, Transaction
from ledger.services import LegSpec, account_for, firm_account, transaction_post
from tests.accounts.factories import ClientFactory
from tests.collateral.factories import asset
from tests.conftest import database_owner_credentials

APPEND_ONLY = ["ledger_leg", "ledger_transaction", "accounts_auditevent", "notifications_event"]


def refused(sql: str, params=None) -> str:
    """Run ``sql`` as the test's role; return PostgreSQL's refusal (the test fails when there is none)."""
    with pytest.raises(DatabaseError) as error, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(error.value)


def post_and_record() -> Transaction:
    """A ledger transaction, an audit event and a notification event: a row in each append-only table."""
    from notifications.services import event_record

    asset("BTC")
    pool = account_for(kind=AccountKind.COLLATERAL, client=ClientFactory(), name="pool")
    txn = transaction_post(
        kind=TransactionKind.DEPOSIT,
        legs=[
            LegSpec(pool, "BTC", Decimal(1)),
            LegSpec(firm_account(AccountKind.CUSTODY_CLEARING), "BTC", Decimal(-1)),
        ],
        memo="deposit",
        actor=SYSTEM,
    )
    with transaction.atomic():
        audit_event_record(actor=SYSTEM, action="test.happened")
        event_record(type="margin.warning", summary="a test", payload={})
    return txn


@pytest.fixture
def posted(db):
    return post_and_record()


def test_the_tests_connect_as_the_application_role_which_owns_nothing(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = current_user"
        )
        assert cursor.fetchone() == (settings.DATABASE_APP_ROLE, False, False, False, False, False)
        cursor.execute(
            "SELECT COUNT(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND relnamespace = 'public'::regnamespace"
        )
        assert cursor.fetchone() == (0,)


@pytest.mark.parametrize("table", [*APPEND_ONLY, "ledger_balance", "financing_facility"])
def test_truncate_is_refused(posted, table):
    assert f"permission denied for table {table}" in refused(f"TRUNCATE {table} CASCADE")


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_disabling_the_append_only_triggers_is_refused(posted, table):
    for statement in (
        f"ALTER TABLE {table} DISABLE TRIGGER ALL",
        f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only",
    ):
        assert f"must be owner of table {table}" in refused(statement)


def test_the_replication_role_is_refused(posted):
    assert 'permission denied to set parameter "session_replication_role"' in refused(
        "SET session_replication_role = replica"
    )


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_updates_and_deletes_of_append_only_tables_are_refused_by_privilege(posted, table):
    assert f"permission denied for table {table}" in refused(f"UPDATE {table} SET id = id")
    assert f"permission denied for table {table}" in refused(f"DELETE FROM {table}")


def test_the_balance_projection_cannot_be_written_only_posted_to(posted):
    pool = Leg.objects.get(transaction=posted, amount=1).account
    assert "permission denied for table ledger_balance" in refused(
        "UPDATE ledger_balance SET amount = 1000000 WHERE account_id = %s", [pool.pk]
    )
    assert "permission denied for table ledger_balance" in refused(
        "INSERT INTO ledger_balance (account_id, instrument_id, amount) VALUES (%s, 'HKD', 1000000)",
        [pool.pk],
    )
    assert "permission denied for table ledger_balance" in refused("DELETE FROM ledger_balance")
    assert Balance.objects.get(account=pool, instrument_id="BTC").amount == 1  # as the legs say


def test_no_ddl(posted):
    assert "permission denied for schema public" in refused("CREATE TABLE sneaky (id int)")
    assert "must be owner of table ledger_leg" in refused("DROP TABLE ledger_leg")
    assert "must be owner of table financing_facility" in refused(
        "ALTER TABLE financing_facility ADD COLUMN x int"
    )
    assert "permission denied for schema public" in refused(
        "CREATE OR REPLACE FUNCTION ledger_leg_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
    )


def test_the_owner_role_cannot_be_taken(posted):
    owner = database_owner_credentials()[0]
    assert owner
    assert f'permission denied to set role "{owner}"' in refused(f'SET ROLE "{owner}"')


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("table", APPEND_ONLY)
def test_even_the_owner_meets_the_append_only_triggers(table, database_owner):
    post_and_record()
    assert f"UPDATE on {table} refused: the table is append-only" in refused(f"UPDATE {table} SET id = id")
    assert f"DELETE on {table} refused: the table is append-only" in refused(f"DELETE FROM {table}")
    assert Transaction.objects.exists()
