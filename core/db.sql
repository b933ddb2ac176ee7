-- The statements of core.db: row triggers for migrations, primary keys reserved ahead, and the bulk writes.

-- name: row_trigger
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {body}
END $$;
CREATE TRIGGER {function} BEFORE {events} ON {table} FOR EACH ROW EXECUTE FUNCTION {function}();

-- name: row_trigger_drop
DROP TRIGGER {function} ON {table}; DROP FUNCTION {function}();

-- name: append_only
RAISE EXCEPTION '% on {table} refused: the table is append-only', TG_OP
    USING ERRCODE = 'integrity_constraint_violation';

-- name: kept_while_referenced
IF EXISTS (SELECT FROM {referencing_table} WHERE {column} = OLD.id) THEN
    RAISE EXCEPTION 'DELETE on {table} refused: {referencing_table} rows refer to id %', OLD.id
        USING ERRCODE = 'foreign_key_violation';
END IF;
RETURN OLD;

-- name: reserve_pks
SELECT nextval(pg_get_serial_sequence(%(table)s, %(column)s)) FROM generate_series(1, %(count)s)

-- name: copy_rows
COPY {table} ({columns}) FROM STDIN

-- name: unnest_ids
SELECT unnest(%s::bigint[])
