"""Time-ordered event keys: UUID version 7 (RFC 9562), a time in milliseconds in the first 48 bits, then
random bits. A new event's key, and each of its messages' entries in the unique index that leads with the
event, then go to the right edge of the index instead of to a random page of it: the set-based ladder writes
thousands of events at a market move, and both tables only grow. ``Event.id``'s default draws them in Python
(``uuid6.uuid7``: in order within a process, counting on from the last millisecond in a burst);
``uuid_v7()`` draws them in SQL for the ladder's statement, from the clock at each row, with no order within
a millisecond (PostgreSQL 18 has ``uuidv7()``; 15 to 17 do not). Existing keys stay as they are."""

import uuid6
from django.db import migrations, models

from core.db import PostgresOnlySQL

# A random (version 4) UUID with its first six bytes replaced by the milliseconds since the epoch, and its
# version nibble set from 4 (0100) to 7 (0111): bits 52 and 53 of the bytes (set_bit counts from the least
# significant bit of each byte). The variant bits are the random UUID's, already the RFC's.
UUID_V7 = """
CREATE OR REPLACE FUNCTION uuid_v7() RETURNS uuid
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$ SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                                                PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp())
                                                                                 * 1000)::bigint) FROM 3)
                                                FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid $$;
"""


class Migration(migrations.Migration):
    dependencies = [("notifications", "0006_one_outbox_index_per_destination")]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="id",
            field=models.UUIDField(default=uuid6.uuid7, editable=False, primary_key=True, serialize=False),
        ),
        PostgresOnlySQL(sql=UUID_V7, reverse_sql="DROP FUNCTION uuid_v7();"),
    ]
