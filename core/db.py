"""Database-level guarantees that PostgreSQL enforces even when the ORM is bypassed, and the bulk writes that
bypass it (rows given as named values: a NamedTuple's fields or a mapping's keys are the columns)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, migrations, models, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone
from djmoney.models.fields import CurrencyField, MoneyField
from djmoney.money import Money
from psycopg import sql

from core.sql import sql_compose, sql_file

# A row to insert: a NamedTuple (its fields name the columns) or a mapping of column names to values.
Row = Sequence[object] | Mapping[str, object]


class PostgresOnlySQL(migrations.RunSQL):
    """A ``RunSQL`` that runs on PostgreSQL and is skipped elsewhere (the embedded SQLite demo)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def _row_trigger(function: str, table: str, events: str, body: str) -> PostgresOnlySQL:
    """A PL/pgSQL function run ``BEFORE {events}`` for each row of ``table``. The function is created or
    replaced: it outlives the table, and a schema built again from scratch (the migration tests) finds it there."""
    return PostgresOnlySQL(
        sql=sql_compose(sql_file(__file__, "db.sql", "row_trigger"), function=function, events=events, table=table,
                        body=body),
        reverse_sql=sql_compose(sql_file(__file__, "db.sql", "row_trigger_drop"), function=function, table=table),
    )  # fmt: skip


def append_only(table: str) -> PostgresOnlySQL:
    """Refuse UPDATE and DELETE on ``table`` (TRUNCATE stays possible for test-database teardown)."""
    return _row_trigger(
        f"{table}_append_only",
        table,
        "UPDATE OR DELETE",
        sql_compose(sql_file(__file__, "db.sql", "append_only"), table=table),
    )


def kept_while_referenced(table: str, referencing_table: str, column: str) -> PostgresOnlySQL:
    """Refuse deleting a row of ``table`` while a row of ``referencing_table`` names it in ``column``: the half
    of a foreign key that guards the referenced row, for a reference written in bulk without a key check (a
    check per written row at commit). The writer reads the rows it references under ``FOR KEY SHARE`` (as
    a key check would lock them), so a concurrent delete waits for it, and then finds the references."""
    body = sql_compose(
        sql_file(__file__, "db.sql", "kept_while_referenced"),
        table=table,
        referencing_table=referencing_table,
        column=column,
    )
    return _row_trigger(f"{table}_kept_for_{referencing_table}", table, "DELETE", body)


# Field classes whose Python value psycopg sends as it is (checked by exact class: a subclass may convert
# its values). Anything else goes through the field's own ``get_db_prep_save``.
_PLAIN_FIELDS = (
    models.AutoField, models.BigAutoField, models.BigIntegerField, models.BooleanField, models.CharField,
    models.DateField, models.DateTimeField, models.EmailField, models.ForeignKey, models.IntegerField,
    models.PositiveIntegerField, models.PositiveSmallIntegerField, models.SmallIntegerField,
    models.TextField, models.UUIDField,
)  # fmt: skip


def _adapter(field: models.Field) -> Callable[[object], object] | None:
    """How one column's Python value becomes what COPY sends: None when it goes as it is; the same value
    ``save()`` would send either way."""
    if type(field) in _PLAIN_FIELDS:
        return None
    if type(field) is models.DecimalField:
        return lambda value: (
            value if value is None or type(value) is Decimal else field.get_db_prep_save(value, connection)
        )
    if isinstance(field, MoneyField):  # the amount column of a Money (its currency is a field of its own)
        return lambda value: (
            value.amount if isinstance(value, Money) else field.get_db_prep_save(value, connection)
        )
    if isinstance(field, CurrencyField):
        return lambda value: value if type(value) is str else field.get_db_prep_save(value, connection)
    if type(field) is models.JSONField:
        encoder = field.encoder
        return lambda value: connection.ops.adapt_json_value(value, encoder)
    return lambda value: field.get_db_prep_save(value, connection)


def reserve_pks(model: type[models.Model], items: list) -> None:
    """Give each item (anything with a ``pk`` attribute: an instance, or plain values about to be inserted)
    the next primary key of ``model``'s table, in one query, so that rows inserted together can refer to
    each other. PostgreSQL only: elsewhere the database assigns keys only as it inserts."""
    if not items:
        return
    if connection.vendor != "postgresql":
        raise NotImplementedError("reserving primary keys needs PostgreSQL's sequences")
    with connection.cursor() as cursor:
        cursor.execute(
            sql_file(__file__, "db.sql", "reserve_pks"),
            {"table": model._meta.db_table, "column": model._meta.pk.column, "count": len(items)},
        )
        for item, (value,) in zip(items, cursor.fetchall(), strict=True):
            item.pk = value


def _other_fields(model: type[models.Model], attnames: Sequence[str]) -> list[models.Field]:
    """The concrete fields of ``model`` not in ``attnames`` (an auto primary key aside), each to take the value
    ``save()`` would give it. A field whose default the database computes (``db_default``, generated) is
    refused: give it, or insert otherwise."""
    others = [
        f
        for f in model._meta.concrete_fields
        if f.attname not in attnames and not (f.primary_key and isinstance(f, models.AutoField))
    ]
    for f in others:
        if getattr(f, "generated", False) or f.db_default is not models.NOT_PROVIDED:
            raise ValueError(
                f"{model.__name__}.{f.name} is computed by the database: give it, or insert otherwise"
            )
    return others


def _save_default(field: models.Field, now) -> object:
    """What ``save()`` puts in ``field`` when it is not given (``auto_now``/``auto_now_add``: ``now``)."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    return field.get_default()


@dataclass(frozen=True)
class DefaultedColumns:
    """The columns of ``model`` an ``INSERT … SELECT`` does not give, each at the value ``save()`` would give
    it: ``columns`` to add to the column list, ``values`` to add to the select list (placeholders cast to
    the column's type, whose parameters are ``params``)."""

    columns: sql.Composable
    values: sql.Composable
    params: dict[str, object]


def insert_defaults(
    model: type[models.Model], attnames: Sequence[str], *, prefix: str, now=None
) -> DefaultedColumns:
    """``DefaultedColumns`` for a set-based insert into ``model`` that gives only ``attnames``. A callable
    default is called once: every row of the statement gets that value (a new empty dict, say). Parameter
    names start with ``prefix``."""
    now = timezone.now() if now is None else now
    columns, values, params = [], [], {}
    for i, f in enumerate(_other_fields(model, attnames)):
        value = _save_default(f, now)
        adapt = _adapter(f)
        name = f"{prefix}_{i}"
        params[name] = value if adapt is None or value is None else adapt(value)
        columns += [sql.SQL(", "), sql.Identifier(f.column)]
        values += [sql.SQL(", "), sql.Placeholder(name), sql.SQL(f"::{f.db_type(connection)}")]
    return DefaultedColumns(sql.Composed(columns), sql.Composed(values), params)


def _named(rows: Sequence[Row]) -> tuple[list[str], Sequence[Sequence[object]]]:
    """The column names ``rows`` carry and their values in that order: NamedTuples of one type as they are
    (a tuple is what COPY takes), mappings with the same keys as tuples of their values."""
    first = rows[0]
    fields = getattr(type(first), "_fields", None)
    if fields is not None:
        row_type = type(first)
        if any(type(row) is not row_type for row in rows):
            raise TypeError(f"rows of one insert are all {row_type.__name__}s")
        return list(fields), rows
    if isinstance(first, Mapping):
        names = list(first)
        if any(len(row) != len(names) for row in rows):
            raise TypeError(f"rows of one insert all name the columns {names}")
        return names, [tuple(row[name] for name in names) for row in rows]
    raise TypeError(f"a row names its columns (a NamedTuple or a mapping), not {type(first).__name__}")


def bulk_insert_values(model: type[models.Model], rows: Sequence[Row]) -> int:
    """``bulk_insert_rows`` for new rows of ``model`` given only some fields: every other field takes the
    value ``save()`` would give it (``auto_now_add`` and ``auto_now``: now; a callable default: called for
    each row). A field whose default the database computes (``db_default``, generated) is refused."""
    if not rows:
        return 0
    return _insert_values(model, *_named(rows))


def _insert_values(model: type[models.Model], attnames: list[str], rows: Sequence[Sequence[object]]) -> int:
    """``bulk_insert_values`` with the values of each row in ``attnames`` order."""
    now = timezone.now()
    others = _other_fields(model, attnames)
    per_row = {i: f.get_default for i, f in enumerate(others) if f.has_default() and callable(f.default)}
    constant = [_save_default(f, now) for i, f in enumerate(others) if i not in per_row]
    if per_row:  # a fresh value (a new dict, a new UUID) for each row
        filled = []
        for row in rows:
            values = iter(constant)
            filled.append(
                (*row, *(per_row[i]() if i in per_row else next(values) for i in range(len(others))))
            )
    else:
        filled = [(*row, *constant) for row in rows]
    return _insert(model, [*attnames, *(f.attname for f in others)], filled)


def bulk_insert_with_pks(model: type[models.Model], items: list, row: Callable[[Any], Row]) -> None:
    """Insert one new row of ``model`` per item, ``row(item)`` giving its named values (the primary key
    aside; every other field at its default), and give each item (anything with a ``pk`` attribute) its
    row's primary key."""
    if not items:
        return
    attnames, rows = _named([row(item) for item in items])
    if connection.vendor == "postgresql":
        reserve_pks(model, items)
        _insert_values(
            model,
            [model._meta.pk.attname, *attnames],
            [(item.pk, *values) for item, values in zip(items, rows, strict=True)],
        )
        return
    objects = [model(**dict(zip(attnames, values, strict=True))) for values in rows]
    model._default_manager.bulk_create(objects)
    for item, obj in zip(items, objects, strict=True):
        item.pk = obj.pk


def bulk_insert_rows(model: type[models.Model], rows: Sequence[Row]) -> int:
    """Insert rows given as named Python values (``client_id`` for a foreign key), without building model
    instances: PostgreSQL's COPY, or ``bulk_create`` elsewhere. Columns not named take their database
    default (none is applied here). Returns how many rows."""
    if not rows:
        return 0
    return _insert(model, *_named(rows))


def _insert(model: type[models.Model], attnames: list[str], rows: Sequence[Sequence[object]]) -> int:
    """``bulk_insert_rows`` with the values of each row in ``attnames`` order."""
    fields = [model._meta.get_field(name) for name in attnames]
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create([model(**dict(zip(attnames, row, strict=True))) for row in rows])
        return len(rows)
    adapters = [(i, adapt) for i, f in enumerate(fields) if (adapt := _adapter(f)) is not None]
    statement = _copy_statement(model._meta.db_table, tuple(f.column for f in fields))
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            if adapters:
                row = list(row)
                for i, adapt in adapters:
                    row[i] = adapt(row[i])
            copy.write_row(row)
    return len(rows)


def insert_unless_taken(instance: models.Model, attnames: Sequence[str], unique: Sequence[str]) -> bool:
    """Insert ``instance`` (the fields ``attnames``; the others take their database default) unless a row with
    the same ``unique`` columns exists: one statement, ``INSERT … ON CONFLICT (…) DO NOTHING RETURNING``,
    without a look-up first or a savepoint around it. A transaction holding the same key uncommitted is waited
    for, as the unique index makes any insert wait. True when the row was inserted (``instance`` then has its
    primary key and counts as saved); False when the key was taken, and nothing was written."""
    meta = instance._meta
    fields = [meta.get_field(name) for name in attnames]
    quote = connection.ops.quote_name
    statement = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({', '.join(quote(meta.get_field(name).column) for name in unique)}) DO NOTHING "
        f"RETURNING {quote(meta.pk.column)}"
    )
    values = [f.get_db_prep_save(getattr(instance, f.attname), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(statement, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    return True


@functools.cache
def _copy_statement(table: str, columns: tuple[str, ...]) -> str:
    return sql_compose(
        sql_file(__file__, "db.sql", "copy_rows"),
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
    )


def fetchone_named(cursor) -> dict[str, Any] | None:
    """The next row of ``cursor`` by column name: a statement's result read by what it says, not by place."""
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([column.name for column in cursor.description], row, strict=True))


def bigint_array(ids) -> str:
    """Integers as the text of a PostgreSQL array, for a parameter cast to one (``%s::bigint[]``). psycopg sends
    a Python list element by element (about 4 ms for the 4,500 ids of a ladder batch, each time it is sent); a
    string it quotes at once (0.1 ms)."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


def id_in(field: str, ids) -> models.Q:
    """``field__in=ids`` for thousands of ids: on PostgreSQL sent as one array parameter (a list of thousands
    of placeholders costs more to send and plan than the query itself); as placeholders elsewhere."""
    ids = list(ids)
    if connection.vendor == "postgresql" and len(ids) > 100:
        unnest = sql_file(__file__, "db.sql", "unnest_ids")
        return models.Q(**{f"{field}__in": RawSQL(unnest, [bigint_array(ids)])})
    return models.Q(**{f"{field}__in": ids})


# --- the application's database role ------------------------------------------------------------------


def append_only_tables(connection) -> list[str]:
    """The tables ``append_only`` guards, found by their triggers."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = c.relname || '_append_only' AND NOT t.tgisinternal ORDER BY 1"
        )
        return [name for (name,) in cursor.fetchall()]


# Tables the application reads but never writes: the database keeps them (ledger migration 0003).
READ_ONLY_TABLES = ("ledger_balance",)


def app_role_grant(connection, role: str) -> None:
    """Give ``role`` (the application's) exactly what the application does on the tables the migrations made,
    run as their owner after every ``migrate``: read and write rows, draw keys from sequences; on append-only
    tables only read and insert; on the balance projection only read. No TRUNCATE, no TRIGGER, no
    REFERENCES, and no DDL: the role owns nothing, and may not create in the schema (docs/database-roles.md)."""
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    role = quote(role)
    with (
        transaction.atomic(using=connection.alias),
        connection.cursor() as cursor,
    ):  # no moment without grants
        cursor.execute("SELECT current_schema()")
        schema = quote(cursor.fetchone()[0])
        statements = [
            f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        ]
        statements += [
            f"REVOKE UPDATE, DELETE ON {quote(t)} FROM {role}" for t in append_only_tables(connection)
        ]
        existing = set(connection.introspection.table_names(cursor))
        statements += [
            f"REVOKE INSERT, UPDATE, DELETE ON {quote(t)} FROM {role}"
            for t in READ_ONLY_TABLES
            if t in existing
        ]
        for statement in statements:
            cursor.execute(statement)
