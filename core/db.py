"""Database-level guarantees that PostgreSQL enforces even when the ORM is bypassed."""

from __future__ import annotations

from django.db import migrations


class PostgresOnlySQL(migrations.RunSQL):
    """A ``RunSQL`` that runs on PostgreSQL and is skipped elsewhere (the embedded SQLite demo)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def append_only(table: str) -> PostgresOnlySQL:
    """Refuse UPDATE and DELETE on ``table`` (TRUNCATE stays possible for test-database teardown)."""
    function = f"{table}_append_only"
    return PostgresOnlySQL(
        sql=f"""
        CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% on {table} refused: the table is append-only', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$;
        CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {function}();
        """,
        reverse_sql=f"DROP TRIGGER {function} ON {table}; DROP FUNCTION {function}();",
    )
