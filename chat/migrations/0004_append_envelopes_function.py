"""The hot path's one statement: ``relais_append_envelopes`` (PostgreSQL only).

A batch of envelopes is stored by one call in autocommit mode, so one round trip and no
BEGIN/COMMIT messages. Inside, two statements run in order, each with its own snapshot
(READ COMMITTED, a VOLATILE function): the rooms are locked in id order, then the
envelopes of members that are not stored yet are numbered, counted into ``last_seq``
and inserted. Membership is thus read once the room's lock is held; every membership
change takes that lock too (chat.services.rooms). See chat/storage/postgres.py.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION relais_append_envelopes(
    room_ids bigint[],
    device_ids bigint[],
    practitioner_ids varchar[],
    client_ids varchar[],
    bodies bytea[],
    now_ms bigint
) RETURNS TABLE (stored_device_id bigint, stored_client_id varchar, stored_seq bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM chat_room WHERE id = ANY(room_ids) ORDER BY id FOR UPDATE;
    RETURN QUERY
    WITH incoming AS (
        SELECT *
        FROM unnest(room_ids, device_ids, practitioner_ids, client_ids, bodies)
            WITH ORDINALITY AS e(room_id, device_id, practitioner_id, client_id, body, position)
    ),
    accepted AS (
        SELECT i.*, row_number() OVER (PARTITION BY i.room_id ORDER BY i.position) AS ordinal
        FROM incoming AS i
        JOIN chat_membership AS m
            ON m.room_id = i.room_id AND m.practitioner_id = i.practitioner_id
        WHERE NOT EXISTS (
            SELECT 1 FROM chat_envelope AS x
            WHERE x.sender_device_id = i.device_id AND x.client_id = i.client_id
        )
    ),
    counts AS (SELECT a.room_id, count(*) AS n FROM accepted AS a GROUP BY a.room_id),
    advanced AS (
        UPDATE chat_room AS r SET last_seq = r.last_seq + c.n
        FROM counts AS c
        WHERE r.id = c.room_id
        RETURNING r.id, r.last_seq - c.n AS base
    ),
    inserted AS (
        INSERT INTO chat_envelope
            (room_id, seq, sender_device_id, sender_practitioner_id, client_id, body, size,
             created_at_ms)
        SELECT a.room_id, v.base + a.ordinal, a.device_id, a.practitioner_id, a.client_id,
               a.body, octet_length(a.body), now_ms
        FROM accepted AS a
        JOIN advanced AS v ON v.id = a.room_id
        RETURNING chat_envelope.sender_device_id, chat_envelope.client_id, chat_envelope.seq
    )
    SELECT * FROM inserted;
END
$$;
"""

DROP = "DROP FUNCTION IF EXISTS relais_append_envelopes(bigint[], bigint[], varchar[], varchar[], bytea[], bigint);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("chat", "0003_envelope_hot_path")]

    operations = [migrations.RunPython(create, drop)]
