"""End to end with the Python SDK: real server process (PostgreSQL, Redis), real
clients encrypting for each other, members added and removed, reconnects and a server
crash; then a search of every table, Redis and the server log for the plaintext."""

from __future__ import annotations

import asyncio
import copy
import os

import pytest
from channels.db import database_sync_to_async as sync_to_async
from django.db import connection

from chat.models import Envelope
from e2ee.envelopes import decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError, CryptoErrorCode
from tests.e2e.sdk import new_client, next_alert, next_message, reopen, wait_alert

pytestmark = pytest.mark.e2e
NURSE, PHARMACIST, DOCTOR = "810003456786", "810002765435", "810001987659"


@pytest.mark.own_server  # it kills and restarts its server
async def test_two_clients_chat_add_and_remove_a_member_and_survive_reconnects(server, tmp_path):
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    pharmacist = await new_client(server.http_url, tmp_path, PHARMACIST, "pharmacist")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")

    room = await nurse.create_room(kind="care_team", members=[PHARMACIST])
    async with asyncio.timeout(20):
        assert await pharmacist.wait_for_room(lambda r: r.room_id == room) == room
    assert (await nurse.send_text(room, "Bonjour, ordonnance de Mme X ?")) == 1
    received = await next_message(pharmacist)
    assert (received.seq, received.sender, received.text) == (
        1,
        nurse.me,
        "Bonjour, ordonnance de Mme X ?",
    )
    await pharmacist.send_text(room, "Reçue, je prépare.")
    assert (await next_message(nurse)).text == "Reçue, je prépare."

    # A member joins: he reads from now on, with the sender key shared to his device.
    await nurse.add_member(room, DOCTOR)
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    await nurse.send_text(room, "Dr Durand nous rejoint.")
    assert (await next_message(doctor)).text == "Dr Durand nous rejoint."
    assert (await next_message(pharmacist)).text == "Dr Durand nous rejoint."

    # A member leaves: the sender key rotates and he cannot read what follows.
    before_removal = copy.deepcopy(pharmacist.rooms[room])
    outbound = nurse.rooms[room].outbound
    assert outbound is not None
    old_key = outbound.key_id
    await nurse.remove_member(room, PHARMACIST)
    seq = await nurse.send_text(room, "Information après le départ du pharmacien.")
    assert (await next_message(doctor)).text == "Information après le départ du pharmacien."
    rotated = nurse.rooms[room].outbound
    assert rotated is not None
    assert rotated.key_id != old_key
    assert pharmacist.me not in rotated.shared_with
    stored = await sync_to_async(Envelope.objects.get)(room_id=room, seq=seq)
    for raw in nurse.rooms[room].events[len(before_removal.events) :]:
        before_removal.apply(raw)  # give him even the newest (public) state
    with pytest.raises(CryptoError) as refused:
        decrypt_envelope(
            state=before_removal.state,
            envelope=parse_envelope(bytes(stored.body)),
            sessions=before_removal.inbound,
        )
    assert refused.value.code == CryptoErrorCode.UNKNOWN_KEY
    # His app was told by the verified chain, kept it (a tombstone) and dropped the
    # room's keys.
    assert (await wait_alert(pharmacist, "removed")).room == room
    assert pharmacist.rooms[room].left
    assert not pharmacist.rooms[room].inbound

    # The doctor goes offline and the app restarts; the server crashes meanwhile.
    await doctor.disconnect()
    for number in range(3):
        await nurse.send_text(room, f"pendant votre absence {number}")
    server.kill_hard()
    server.start()
    doctor = await reopen(doctor, tmp_path, "doctor")
    missed = [await next_message(doctor) for _ in range(3)]
    assert [m.text for m in missed] == [f"pendant votre absence {n}" for n in range(3)]
    nurse = await reopen(nurse, tmp_path, "nurse")
    await doctor.send_text(room, "Je suis de retour.")
    assert (await next_message(nurse)).text == "Je suis de retour."
    assert nurse.alerts.empty()
    assert doctor.alerts.empty()
    for client in (nurse, pharmacist, doctor):
        await client.close()


SECRETS = ["Plaie talon gauche 3 cm", "Patient Jean Dupont né 1944", "amoxicilline 1g x3"]


@pytest.mark.own_server  # it stops its server
async def test_the_server_never_holds_the_plaintext(server, tmp_path):
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="direct", members=[DOCTOR])
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    for text in SECRETS:
        await nurse.send_text(room, text)
        assert (await next_message(doctor)).text == text
        await doctor.send_text(room, text + " (reçu)")
        assert (await next_message(nurse)).text == text + " (reçu)"
    await nurse.close()
    await doctor.close()
    server.stop()

    needles = []
    for text in SECRETS:
        raw = text.encode("utf-8")
        needles += [raw, raw.hex().encode(), text.split()[0].encode("utf-8")]
    # Every table of the database, every row, as text (bytea shows as hex).
    found: list[str] = []
    control: list[str] = []  # proves the search sees data: a demo name is in the directory

    def search_database() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            tables = [row[0] for row in cursor.fetchall()]
            assert "chat_envelope" in tables
            assert "keylog_logentry" in tables
            for table in tables:
                cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608 - names from the catalog
                for (row,) in cursor.fetchall():
                    data = row.encode("utf-8")
                    if b"Martin" in data:
                        control.append(table)
                    found.extend(
                        f"{table}: {n!r}" for n in needles if n in data or n in data.lower()
                    )

    await sync_to_async(search_database)()
    envelopes = await sync_to_async(Envelope.objects.filter(room_id=room).count)()
    assert envelopes == 2 * len(SECRETS)
    # Redis: every key of the test run's prefix (and any other), every value.
    import redis

    store = redis.Redis.from_url(os.environ["RELAIS_REDIS_URL"])
    for key in store.scan_iter(count=1000):
        dumped = store.dump(key) or b""
        found.extend(f"redis {key!r}" for n in needles if n in key or n in dumped)
    # The server's own log.
    log = server.log_path.read_bytes()
    assert b"Listening" in log or b"HTTP" in log or len(log) > 0
    found.extend(f"log: {n!r}" for n in needles if n in log)
    assert found == []
    assert "directory_practitioner" in control


async def test_a_send_retried_with_its_id_is_stored_once(server, tmp_path):
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="direct", members=[DOCTOR])
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    content = {"type": "text", "text": "Pansement refait ce matin."}
    first = await nurse.send(room, content, message_id="visite-2041")
    again = await nurse.send(room, content, message_id="visite-2041")  # a retry
    assert first == again == 1
    assert (await next_message(doctor)).text == "Pansement refait ce matin."
    assert await sync_to_async(Envelope.objects.filter(room_id=room).count)() == 1
    with pytest.raises(ValueError, match="message id"):
        await nurse.send(room, content, message_id="no spaces allowed")

    # A malformed attachment is reported, and the message still arrives, without one.
    await nurse.send(room, {"type": "attachment", "attachment": {"v": 1}, "text": "?"})
    odd = await next_message(doctor)
    assert (odd.seq, odd.text, odd.attachment) == (2, "?", None)
    alert = await next_alert(doctor)
    assert (alert.kind, alert.room) == ("bad_descriptor", room)
    for client in (nurse, doctor):
        await client.close()
