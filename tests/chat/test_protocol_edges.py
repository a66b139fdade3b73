"""Where an independent client, written from docs/protocol.md alone, found the server
and the document disagreeing, and hostile frames that used to hurt: each now behaves
as the protocol says (the real ASGI application, PostgreSQL, in-process and Redis)."""

from __future__ import annotations

import asyncio
import base64

import pytest
from channels.db import database_sync_to_async as sync_to_async

from chat.clock import ManualClock
from chat.errors import RelaisError
from chat.models import Envelope
from chat.runtime import Runtime
from tests.chat.conftest import body
from tests.wsclient import Client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fanout_mode")]

NESTED = "[" * 1000 + "]" * 1000


async def assert_still_answers(client: Client) -> None:
    assert await client.frames_until_pong() == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"type": "sync", "rooms": ' + NESTED + "}", "bad_frame"),
        ('{"room": ' + NESTED + ', "type": "send"}', "bad_frame"),  # the tag comes last
        ('{"x": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + ', "type": "ping"}', "bad_frame"),
        (NESTED, "bad_json"),  # not an object
        ('{"type": "ping", "nonce": ' + "[" * 20_000, "bad_frame"),  # and unterminated
    ],
)
async def test_deeply_nested_frames_are_refused_and_the_connection_lives(
    runtime, care_room, tokens, raw, code
):
    # Before login too: any page of an allowed origin could send these.
    anonymous = Client()
    assert await anonymous.connect()
    await anonymous.send_raw(raw)
    error = await anonymous.receive_type("error")
    assert (error["code"], error["ref"]) == (code, None)
    await anonymous.send({"type": "auth", "token": tokens["nurse"][1]})
    await anonymous.receive_type("ready")
    await anonymous.send_raw(raw)
    assert (await anonymous.receive_type("error"))["code"] == code
    await assert_still_answers(anonymous)
    await anonymous.close()


# A superscript two, an Arabic-Indic one, a fullwidth one, a mix; signs and spaces.
@pytest.mark.parametrize("key", ["\u00b2", "\u0661", "\uff11", "1\u0661", "+1", " 1"])
async def test_room_keys_of_sync_are_ascii_digits_only(runtime, care_room, tokens, key):
    client = Client(token=tokens["doctor"][1])
    assert await client.connect()
    await client.receive_type("ready")
    await client.send({"type": "sync", "rooms": {key: 0}})
    error = await client.receive_type("error")
    assert error["code"] == "bad_frame"
    # Nothing was served for any room: no backlog, no synced.
    await assert_still_answers(client)
    await client.close()


async def test_a_connection_that_never_syncs_gets_live_messages(runtime, care_room, tokens):
    doctor = Client(token=tokens["doctor"][1])
    assert await doctor.connect()
    ready = await doctor.receive_type("ready")
    assert ready["rooms"] == {str(care_room.pk): 0}
    nurse = Client(token=tokens["nurse"][1])
    await nurse.start()
    for number in (1, 2):
        await nurse.send(
            {"type": "send", "room": care_room.pk, "id": f"n{number}", "body": body("soin")}
        )
        assert (await nurse.receive_type("ack"))["seq"] == number
    assert [(await doctor.receive_type("message"))["seq"] for _ in range(2)] == [1, 2]
    await doctor.close()
    await nurse.close()


async def test_a_sync_after_live_messages_repeats_none_of_them(runtime, care_room, tokens):
    """Each envelope reaches a connection once, live or in a backlog."""
    nurse = Client(token=tokens["nurse"][1])
    await nurse.start()
    for number in (1, 2, 3):
        await nurse.send({"type": "send", "room": care_room.pk, "id": f"o{number}", "body": "AA"})
        await nurse.receive_type("ack")
    doctor = Client(token=tokens["doctor"][1])
    assert await doctor.connect()
    await doctor.receive_type("ready")  # the room stands at 3
    for number in (4, 5):
        await nurse.send({"type": "send", "room": care_room.pk, "id": f"l{number}", "body": "AA"})
        await nurse.receive_type("ack")
    assert [(await doctor.receive_type("message"))["seq"] for _ in range(2)] == [4, 5]
    await doctor.send({"type": "sync", "rooms": {str(care_room.pk): 1}})
    backlog = await doctor.receive_type("backlog")
    assert ([m["seq"] for m in backlog["messages"]], backlog["more"]) == ([2, 3], False)
    assert (await doctor.receive_type("synced"))["rooms"] == {str(care_room.pk): 5}
    await nurse.send({"type": "send", "room": care_room.pk, "id": "l6", "body": "AA"})
    await nurse.receive_type("ack")
    assert (await doctor.receive_type("message"))["seq"] == 6
    assert await doctor.frames_until_pong() == []
    await doctor.close()
    await nurse.close()


async def test_a_body_of_the_documented_size_fits_and_a_larger_one_is_body_too_large(
    runtime, care_room, tokens
):
    client = Client(token=tokens["nurse"][1])
    ready = await client.start()
    limit = ready["limits"]["max_body_bytes"]
    assert limit == 48 * 1024
    largest = base64.urlsafe_b64encode(b"\x01" * limit).decode().rstrip("=")
    await client.send({"type": "send", "room": care_room.pk, "id": "max", "body": largest})
    assert (await client.receive_type("ack"))["seq"] == 1
    over = base64.urlsafe_b64encode(b"\x01" * (limit + 1)).decode().rstrip("=")
    await client.send({"type": "send", "room": care_room.pk, "id": "over", "body": over})
    error = await client.receive_type("error")
    assert (error["code"], error["ref"]) == ("body_too_large", "over")
    await assert_still_answers(client)
    await client.close()


async def test_a_negative_sync_position_refuses_that_room_only(
    runtime, care_room, tokens, practitioners
):
    from tests.signed_rooms import create_room

    other = await sync_to_async(create_room)(
        creator=practitioners["doctor"], kind="direct", member_ids=["810003456786"]
    )
    client = Client(token=tokens["doctor"][1])
    assert await client.connect()
    await client.receive_type("ready")
    await client.send({"type": "sync", "rooms": {str(care_room.pk): -1, str(other.pk): 0}})
    error = await client.receive_type("error")
    assert (error["code"], error["ref"]) == ("bad_sequence", str(care_room.pk))
    assert (await client.receive_type("synced"))["rooms"] == {str(other.pk): 0}
    await client.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "send", "room": 1, "id": "ref-1", "body": "not base64!"},
        {"type": "send", "room": 0, "id": "ref-1", "body": "AA"},
        {"type": "send", "room": 1, "id": "ref-1", "body": "AB"},  # non-canonical bits
        {"type": "send", "room": 1, "id": "ref-1", "body": "AA="},  # wrong padding
        {"type": "send", "room": 1, "id": "ref-1", "body": "AA", "extra": True},
        {"type": "send", "room": "1", "id": "ref-1", "body": "AA"},
    ],
)
async def test_a_refused_send_names_its_id_in_ref(runtime, care_room, tokens, frame):
    client = Client(token=tokens["nurse"][1])
    await client.start()
    await client.send(frame)
    error = await client.receive_type("error")
    assert (error["code"], error["ref"]) == ("bad_frame", "ref-1")
    await client.close()


async def test_an_unreadable_send_id_gives_a_null_ref(runtime, care_room, tokens):
    client = Client(token=tokens["nurse"][1])
    await client.start()
    await client.send({"type": "send", "room": 1, "id": "bad id!", "body": "AA"})
    error = await client.receive_type("error")
    assert (error["code"], error["ref"]) == ("bad_frame", None)
    await client.close()


@pytest.mark.parametrize(("sent", "relayed"), [("AQ", "AQ"), ("AQ==", "AQ"), ("AAE", "AAE")])
async def test_a_body_is_relayed_live_exactly_as_catch_up_returns_it(
    runtime, care_room, tokens, sent, relayed
):
    nurse = Client(token=tokens["nurse"][1])
    doctor = Client(token=tokens["doctor"][1])
    await nurse.start()
    await doctor.start()
    await nurse.send({"type": "send", "room": care_room.pk, "id": "b64", "body": sent})
    await nurse.receive_type("ack")
    assert (await doctor.receive_type("message"))["body"] == relayed
    later = Client(token=tokens["doctor"][1])
    assert await later.connect()
    await later.receive_type("ready")
    await later.send({"type": "sync", "rooms": {str(care_room.pk): 0}})
    assert (await later.receive_type("backlog"))["messages"][0]["body"] == relayed
    for client in (nurse, doctor, later):
        await client.close()


async def test_pings_are_answered_while_a_send_waits_for_the_database(
    runtime: Runtime, clock: ManualClock, care_room, tokens
):
    """A slow send no longer holds the connection: its pings, its typing frames and its
    other sends are read at once; sends queued behind it keep the deadline of their
    arrival, so their server_busy does not come one store timeout after another."""
    import psycopg

    from tests.chat.test_storage import _raw_conninfo, _until_a_backend_waits_for_a_lock

    nurse = Client(token=tokens["nurse"][1])
    await nurse.start()
    conninfo = _raw_conninfo()
    observer = await psycopg.AsyncConnection.connect(**conninfo, autocommit=True)
    blocking = await psycopg.AsyncConnection.connect(**conninfo)
    async with blocking, blocking.transaction():
        await blocking.execute("SELECT id FROM chat_room WHERE id = %s FOR UPDATE", (care_room.pk,))
        for number in (1, 2, 3):
            await nurse.send(
                {"type": "send", "room": care_room.pk, "id": f"s{number}", "body": "AA"}
            )
        await _until_a_backend_waits_for_a_lock(observer)
        await nurse.send({"type": "ping", "nonce": "alive"})
        assert await nurse.receive() == {"type": "pong", "nonce": "alive"}
        clock.advance(11)  # past the store's 10-second limit, for all three sends
        runtime.store.expire_overdue()  # type: ignore[attr-defined]
        answers = [await nurse.receive_type("error") for _ in range(3)]
        assert [(a["code"], a["ref"]) for a in answers] == [
            ("server_busy", "s1"),
            ("server_busy", "s2"),
            ("server_busy", "s3"),
        ]
    await observer.close()
    # The first send was committed once the lock went; its retry gets the original.
    await nurse.send({"type": "send", "room": care_room.pk, "id": "s1", "body": "AA"})
    retry = await nurse.receive_type("ack")
    assert (retry["seq"], retry["duplicate"]) == (1, True)
    assert await sync_to_async(Envelope.objects.count)() == 1
    await nurse.close()


async def test_a_send_committed_after_its_server_busy_still_reaches_the_room(
    runtime: Runtime, clock: ManualClock, care_room, tokens
):
    """The watchdog answered server_busy, then the batch committed: the envelope is
    published all the same, so the other devices get it without waiting for the next."""
    import psycopg

    from tests.chat.test_storage import _raw_conninfo, _until_a_backend_waits_for_a_lock

    nurse = Client(token=tokens["nurse"][1])
    doctor = Client(token=tokens["doctor"][1])
    await nurse.start()
    await doctor.start()
    conninfo = _raw_conninfo()
    observer = await psycopg.AsyncConnection.connect(**conninfo, autocommit=True)
    blocking = await psycopg.AsyncConnection.connect(**conninfo)
    async with blocking, blocking.transaction():
        await blocking.execute("SELECT id FROM chat_room WHERE id = %s FOR UPDATE", (care_room.pk,))
        await nurse.send({"type": "send", "room": care_room.pk, "id": "late", "body": "AA"})
        await _until_a_backend_waits_for_a_lock(observer)
        clock.advance(11)
        runtime.store.expire_overdue()  # type: ignore[attr-defined]
        assert (await nurse.receive_type("error"))["code"] == "server_busy"
    await observer.close()
    message = await doctor.receive_type("message")
    assert (message["seq"], message["id"]) == (1, "late")
    await nurse.close()
    await doctor.close()


async def test_sends_queued_behind_a_slow_one_are_answered_without_waiting_again(
    runtime: Runtime, clock: ManualClock, care_room, tokens
):
    """Once a queued send's own deadline passed while it waited, it is answered at
    once, not after another full store timeout."""
    from chat.services.devices import DeviceIdentity
    from chat.services.messages import do_send

    identity = DeviceIdentity(device_id=tokens["nurse"][0], practitioner_id="810003456786")
    with pytest.raises(RelaisError) as busy:
        await asyncio.wait_for(
            do_send(
                store=runtime.store,
                hub=runtime.hub,
                identity=identity,
                room_id=care_room.pk,
                client_id="too-late",
                body_text="AA",
                deadline=clock.monotonic() - 0.001,
            ),
            timeout=1,  # the answer comes at once, nothing waits
        )
    assert busy.value.code == "server_busy"
    assert await sync_to_async(Envelope.objects.count)() == 0


async def test_a_receipt_goes_to_the_other_devices_not_back_to_its_own(runtime, care_room, tokens):
    nurse, doctor = Client(token=tokens["nurse"][1]), Client(token=tokens["doctor"][1])
    await nurse.start()
    await doctor.start()
    await nurse.send({"type": "send", "room": care_room.pk, "id": "r", "body": "AA"})
    await nurse.receive_type("ack")
    await doctor.receive_type("message")
    await doctor.send({"type": "receipt", "room": care_room.pk, "seq": 1, "kind": "read"})
    assert (await nurse.receive_type("receipt"))["device"] == tokens["doctor"][0]
    assert await doctor.frames_until_pong() == []
    await nurse.close()
    await doctor.close()


async def test_a_catch_up_the_database_cannot_serve_closes_with_1013(
    runtime: Runtime, clock: ManualClock, care_room, tokens, monkeypatch
):
    """The true reason (try again later), not 4009 "could not keep up"."""
    from chat import delivery as delivery_module
    from chat.runtime import install_runtime
    from chat.storage.postgres import PostgresMessageStore
    from tests.e2e.server import free_port

    nurse = Client(token=tokens["nurse"][1])
    await nurse.start()
    await nurse.send({"type": "send", "room": care_room.pk, "id": "kept", "body": "AA"})
    await nurse.receive_type("ack")
    monkeypatch.setattr(delivery_module, "STORE_WAIT_SECONDS", 0.5)
    from tests.chat.test_storage import _raw_conninfo

    away = PostgresMessageStore(
        conninfo={**_raw_conninfo(), "port": free_port()},
        pool_size=2,
        batch_max=8,
        writers=1,
        timeout_seconds=10,
        clock=clock,
    )
    install_runtime(Runtime(store=away, hub=runtime.hub, clock=clock))
    try:
        doctor = Client(token=tokens["doctor"][1])
        assert await doctor.connect()
        await doctor.receive_type("ready")
        await doctor.send({"type": "sync", "rooms": {str(care_room.pk): 0}})
        assert (await doctor.receive_type("error"))["code"] == "server_busy"
        assert await doctor.expect_close() == 1013
    finally:
        install_runtime(runtime)
        await away.close()
    await nurse.close()


async def test_sends_beyond_what_a_connection_may_queue_are_answered_at_once(
    runtime: Runtime, clock: ManualClock, care_room, tokens
):
    import psycopg

    from chat.connection import INBOX_LIMIT
    from tests.chat.test_storage import _raw_conninfo, _until_a_backend_waits_for_a_lock

    nurse = Client(token=tokens["nurse"][1])
    await nurse.start()
    conninfo = _raw_conninfo()
    observer = await psycopg.AsyncConnection.connect(**conninfo, autocommit=True)
    blocking = await psycopg.AsyncConnection.connect(**conninfo)
    async with blocking, blocking.transaction():
        await blocking.execute("SELECT id FROM chat_room WHERE id = %s FOR UPDATE", (care_room.pk,))
        await nurse.send({"type": "send", "room": care_room.pk, "id": "first", "body": "AA"})
        await _until_a_backend_waits_for_a_lock(observer)
        for number in range(INBOX_LIMIT + 3):
            await nurse.send(
                {"type": "send", "room": care_room.pk, "id": f"q{number}", "body": "AA"}
            )
        # "first" is with the store; the inbox holds q0 ... q255; the rest: at once.
        refused = [await nurse.receive_type("error") for _ in range(3)]
        assert [(e["code"], e["ref"]) for e in refused] == [
            ("server_busy", f"q{INBOX_LIMIT + n}") for n in range(3)
        ]
    await observer.close()
    acks = [await nurse.receive_type("ack") for _ in range(INBOX_LIMIT + 1)]
    assert [a["seq"] for a in acks] == list(range(1, INBOX_LIMIT + 2))
    await nurse.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"a": "' + '\\"' * 26_000, "bad_json"),  # an unterminated string of escaped quotes
        ('{"a": "' + '\\"' * 26_000 + "\\", "bad_json"),
        ('{"type": "ping", "nonce": ' + "[]," * 26_000 + "[]}", "bad_json"),
        ('{"x": "[[[[[[[[[[", "type": "teleport"}', "unknown_type"),  # brackets in a string
        ('{"x": "' + "[" * 20, "bad_json"),  # unterminated: its brackets are string
    ],
)
async def test_the_nesting_check_reads_any_frame_in_linear_time(runtime, tokens, raw, code):
    """A frame crafted against the nesting scanner (which used to take seconds on
    60 KB of escaped quotes, before login) is classified at once, and brackets inside
    strings, even unterminated ones, do not count."""
    import time

    client = Client()
    assert await client.connect()
    started = time.monotonic()
    await client.send_raw(raw)
    assert (await client.receive_type("error"))["code"] == code
    # An algorithmic bound, not a speed target: quadratic scanning took over 7 s here.
    assert time.monotonic() - started < 2
    await client.close()
