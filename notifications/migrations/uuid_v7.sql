-- A time-ordered key: UUID version 7 (RFC 9562), for the set-based writes of events (PostgreSQL 18 has
-- uuidv7(); 15 to 17 do not). A random (version 4) UUID with its first six bytes replaced by the milliseconds
-- since the epoch, from the clock at each row, and its version nibble set from 4 (0100) to 7 (0111): bits 52
-- and 53 of the bytes (set_bit counts from the least significant bit of each byte). The variant bits are the
-- random UUID's, already the RFC's. No order within a millisecond.
CREATE OR REPLACE FUNCTION uuid_v7() RETURNS uuid
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$ SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                                                PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp())
                                                                                 * 1000)::bigint) FROM 3)
                                                FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid $$;
