"""Database-level guarantees that PostgreSQL enforces even when the ORM is bypassed."""

from __future__ import annotations

from django.db import connection, migrations, models


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


def bulk_insert(model: type[models.Model], objects: list[models.Model]) -> None:
    """Insert many new rows as fast as the database allows: PostgreSQL's COPY, or ``bulk_create``
    elsewhere. For rows whose generated primary keys the caller does not need back (COPY returns none);
    defaults and ``auto_now_add`` are applied as ``save()`` would."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects)
        return
    fields = [
        f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))
    ]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for obj in objects:
            copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields])
