-- The ratio snapshots partitioned by day on taken_at (PostgreSQL's declarative partitioning), so that the
-- retention task drops a whole day at once (no DELETE, no dead rows, no vacuum) once it is rolled up. Run by
-- financing migration 0004; docs/operations.md, "What is kept".

-- name: keep_function
-- Create the daily partitions from today (UTC) to days_ahead days on, and drop those that end at or before
-- drop_before (none when NULL); with dry_run, only say what would be done. One row per partition created or
-- dropped: the action, the partition, and its rows (moved out of the default partition when created; the
-- planner's estimate when dropped). A partition is created as a table of its own, filled with the rows the
-- default partition holds for its day (a retention task that stopped for longer than days_ahead leaves them
-- there), then attached. It runs as the tables' owner (SECURITY DEFINER): the application's role has no DDL.
-- Dropping a partition takes a short ACCESS EXCLUSIVE lock on the table (a sweep's insert waits for it).
CREATE OR REPLACE FUNCTION financing_ratiosnapshot_partitions_keep(days_ahead integer, drop_before timestamptz,
                                                                   dry_run boolean)
    RETURNS TABLE (action text, partition_name text, row_count bigint)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public  -- what it creates: in the table's schema
AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    day date;
    name text;
    child record;
    ends date;
    covered_until date;
    schema text := (SELECT relnamespace::regnamespace::text FROM pg_class
                     WHERE oid = 'financing_ratiosnapshot'::regclass);
BEGIN
    SELECT max(to_date(right(c.relname, 8), 'YYYYMMDD')) INTO covered_until
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'financing_ratiosnapshot'::regclass AND c.relname LIKE 'financing_ratiosnapshot_upto_%';
    FOR day IN SELECT d::date FROM generate_series(today, today + days_ahead, interval '1 day') AS d LOOP
        name := 'financing_ratiosnapshot_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(format('%I.%I', schema, name)) IS NOT NULL OR day < covered_until;
        action := 'create';
        partition_name := name;
        SELECT count(*) INTO row_count FROM financing_ratiosnapshot_default
         WHERE taken_at >= day::timestamp AT TIME ZONE 'UTC' AND taken_at < (day + 1)::timestamp AT TIME ZONE 'UTC';
        IF NOT dry_run THEN
            EXECUTE format('CREATE TABLE %I.%I (LIKE financing_ratiosnapshot INCLUDING DEFAULTS)', schema, name);
            EXECUTE format('WITH moved AS (DELETE FROM financing_ratiosnapshot_default WHERE taken_at >= %L AND taken_at < %L '
                           'RETURNING *) INSERT INTO %I.%I SELECT * FROM moved',
                           day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC', schema, name);
            EXECUTE format('ALTER TABLE financing_ratiosnapshot ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                           schema, name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        END IF;
        RETURN NEXT;
    END LOOP;
    IF drop_before IS NULL THEN
        RETURN;
    END IF;
    FOR child IN
        SELECT c.relname, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'financing_ratiosnapshot'::regclass AND c.relname <> 'financing_ratiosnapshot_default'
         ORDER BY c.relname
    LOOP
        ends := to_date(right(child.relname, 8), 'YYYYMMDD');
        IF child.relname NOT LIKE 'financing_ratiosnapshot_upto_%' THEN
            ends := ends + 1;
        END IF;
        CONTINUE WHEN ends::timestamp AT TIME ZONE 'UTC' > drop_before;
        action := 'drop';
        partition_name := child.relname;
        row_count := greatest(child.reltuples, 0)::bigint;
        IF NOT dry_run THEN
            EXECUTE format('DROP TABLE %I.%I', schema, child.relname);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- name: forward
-- The plain table becomes a partitioned one: the same columns, a key of (id, taken_at) (a partitioned table's
-- unique keys must hold the partition key; ids are still drawn from one sequence, a thousand at a time), the
-- same index, a partition for everything before today, one per day from today on (the function above), and a
-- default partition for anything outside them. The rows are copied over.
ALTER TABLE financing_ratiosnapshot RENAME TO financing_ratiosnapshot_plain;
ALTER TABLE financing_ratiosnapshot_plain RENAME CONSTRAINT financing_ratiosnapshot_pkey TO financing_ratiosnapshot_plain_pkey;
ALTER INDEX financing_r_facilit_e9bbd4_idx RENAME TO financing_ratiosnapshot_plain_facility_idx;
CREATE TABLE financing_ratiosnapshot (LIKE financing_ratiosnapshot_plain INCLUDING DEFAULTS) PARTITION BY RANGE (taken_at);
CREATE SEQUENCE financing_ratiosnapshot_key_seq CACHE 1000 OWNED BY financing_ratiosnapshot.id;
SELECT setval('financing_ratiosnapshot_key_seq', COALESCE((SELECT max(id) FROM financing_ratiosnapshot_plain), 0) + 1, false);
ALTER TABLE financing_ratiosnapshot ALTER COLUMN id SET DEFAULT nextval('financing_ratiosnapshot_key_seq');
ALTER TABLE financing_ratiosnapshot ADD CONSTRAINT financing_ratiosnapshot_pkey PRIMARY KEY (id, taken_at);
CREATE INDEX financing_r_facilit_e9bbd4_idx ON financing_ratiosnapshot (facility_id, taken_at DESC);
CREATE TABLE financing_ratiosnapshot_default PARTITION OF financing_ratiosnapshot DEFAULT;
DO $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF financing_ratiosnapshot FOR VALUES FROM (MINVALUE) TO (%L)',
                   'financing_ratiosnapshot_upto_' || to_char(today, 'YYYYMMDD'), today::timestamp AT TIME ZONE 'UTC');
END
$$;
SELECT count(*) FROM financing_ratiosnapshot_partitions_keep(7, NULL, false);
INSERT INTO financing_ratiosnapshot SELECT * FROM financing_ratiosnapshot_plain;
DROP TABLE financing_ratiosnapshot_plain;

-- name: reverse
-- Back to one plain table with an identity key, as migration 0002 left it.
CREATE TABLE financing_ratiosnapshot_plain (LIKE financing_ratiosnapshot);
ALTER TABLE financing_ratiosnapshot_plain ADD CONSTRAINT financing_ratiosnapshot_plain_pkey PRIMARY KEY (id);
ALTER TABLE financing_ratiosnapshot_plain ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (CACHE 1000);
INSERT INTO financing_ratiosnapshot_plain SELECT * FROM financing_ratiosnapshot;
SELECT setval(pg_get_serial_sequence('financing_ratiosnapshot_plain', 'id'),
              COALESCE((SELECT max(id) FROM financing_ratiosnapshot_plain), 0) + 1, false);
DROP TABLE financing_ratiosnapshot;
ALTER TABLE financing_ratiosnapshot_plain RENAME TO financing_ratiosnapshot;
ALTER TABLE financing_ratiosnapshot RENAME CONSTRAINT financing_ratiosnapshot_plain_pkey TO financing_ratiosnapshot_pkey;
CREATE INDEX financing_r_facilit_e9bbd4_idx ON financing_ratiosnapshot (facility_id, taken_at DESC);
DROP FUNCTION financing_ratiosnapshot_partitions_keep(integer, timestamptz, boolean);
