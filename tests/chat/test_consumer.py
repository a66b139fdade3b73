"""The WebSocket protocol on the real ASGI application (docs/protocol.md).

Every test runs twice: in-process fan-out, and through the real Redis. The database is
the test PostgreSQL (transactional: the envelope store commits on its own connections).
"""

from __future__ import annotations

import base64
import json

import pytest
from channels.db import database_sync_to_async as sync_to_async

from chat.clock import ManualClock
from chat.models import DeviceCursor, Envelope
from chat.runtime import Runtime
from chat.services.devices import do_revoke_device
from chat.storage.base import AppendRequest
from tests.chat.conftest import body
from tests.signed_rooms import add_member as do_add_member
from tests.signed_rooms import remove_member as do_remove_member
from tests.wsclient import Client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fanout_mode")]


async def test_send_is_acked_and_fanned_out_to_other_devices(runtime, care_room, tokens):
    nurse = Client(token=tokens["nurse"][1])
    tablet = Client(token=tokens["nurse_tablet"][1])
    doctor = Client(token=tokens["doctor"][1])
    for client in (nurse, tablet, doctor):
        await client.start()

    await nurse.send({"type": "send", "room": care_room.pk, "id": "m-1", "body": body("plaie")})
    ack = await nurse.receive_type("ack")
    assert (ack["id"], ack["room"], ack["seq"], ack["duplicate"]) == ("m-1", care_room.pk, 1, False)

    for receiver in (doctor, tablet):
        message = await receiver.receive_type("message")
        assert message == {
            "type": "message",
            "room": care_room.pk,
            "seq": 1,
            "id": "m-1",
            "sender": {"device": tokens["nurse"][0], "practitioner": "810003456786"},
            "body": body("plaie"),
            "ts": ack["ts"],
        }
    # The sending device gets its ack, not a copy of its own message.
    assert await nurse.frames_until_pong() == []
    for client in (nurse, tablet, doctor):
        await client.close()


async def test_retried_send_returns_the_original_ack_and_is_delivered_once(
    runtime, care_room, tokens
):
    nurse = Client(token=tokens["nurse"][1])
    doctor = Client(token=tokens["doctor"][1])
    await nurse.start()
    await doctor.start()
    frame = {"type": "send", "room": care_room.pk, "id": "retry-1", "body": body("a")}
    await nurse.send(frame)
    first = await nurse.receive_type("ack")
    await nurse.send(frame)
    second = await nurse.receive_type("ack")
    assert second == {**first, "duplicate": True}
    assert (await doctor.receive_type("message"))["seq"] == 1
    assert await doctor.frames_until_pong() == []
    assert await sync_to_async(Envelope.objects.filter(room=care_room).count)() == 1
    await nurse.close()
    await doctor.close()


async def test_auth_frame_works_when_no_header(runtime, care_room, tokens):
    client = Client()
    assert await client.connect()
    await client.send({"type": "auth", "token": tokens["doctor"][1]})
    ready = await client.receive_type("ready")
    assert ready["device"] == tokens["doctor"][0]
    assert ready["rooms"] == {str(care_room.pk): 0}
    await client.send({"type": "auth", "token": tokens["doctor"][1]})
    assert (await client.receive_type("error"))["code"] == "already_authenticated"
    await client.close()


async def test_frames_before_auth_are_refused(runtime, tokens):
    client = Client()
    assert await client.connect()
    await client.send({"type": "ping"})
    assert (await client.receive_type("error"))["code"] == "not_authenticated"
    await client.close()


@pytest.mark.parametrize("where", ["header", "frame"])
async def test_bad_token_closes_with_4001(runtime, practitioners, where):
    client = Client(token="not-a-token" if where == "header" else None)
    assert await client.connect()
    if where == "frame":
        await client.send({"type": "auth", "token": "not-a-token"})
    assert (await client.receive_type("error"))["code"] == "auth_failed"
    assert await client.expect_close() == 4001


async def test_auth_deadline_closes_with_4001(runtime, practitioners, settings):
    settings.RELAIS = {**settings.RELAIS, "AUTH_TIMEOUT_SECONDS": 0}
    client = Client()
    assert await client.connect()
    assert await client.expect_close() == 4001


async def test_revoked_token_is_refused_and_open_connection_closed(runtime, care_room, tokens):
    device_id, token = tokens["doctor"]
    doctor = Client(token=token)
    await doctor.start()
    await sync_to_async(do_revoke_device)(device_id=device_id)
    assert await doctor.expect_close() == 4010
    again = Client(token=token)
    assert await again.connect()
    assert (await again.receive_type("error"))["code"] == "auth_failed"


@pytest.mark.parametrize("origin", [None, "https://evil.example"])
async def test_foreign_or_missing_origin_is_refused(runtime, tokens, origin):
    client = Client(token=tokens["doctor"][1], origin=origin)
    assert not await client.connect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "send", "room": 1, "id": "x"}', "bad_frame"),
        ('{"type": "send", "room": 1, "id": "bad id!", "body": "AA"}', "bad_frame"),
        ('{"type": "send", "room": 1, "id": "x", "body": "AA", "extra": 1}', "bad_frame"),
        ('{"type": "send", "room": 1, "id": "x", "body": "not base64!"}', "bad_frame"),
        ('{"type": "send", "room": -4, "id": "x", "body": "AA"}', "bad_frame"),
        ('{"type": "sync", "rooms": {"one": 1}}', "bad_frame"),
        ('{"type": "receipt", "room": 1, "seq": 1, "kind": "seen"}', "bad_frame"),
    ],
)
async def test_malformed_frames_get_an_error_and_store_nothing(
    runtime, care_room, tokens, raw, code
):
    client = Client(token=tokens["nurse"][1])
    await client.start()
    await client.send_raw(raw)
    error = await client.receive_type("error")
    assert error["code"] == code
    assert error["message"]
    assert error["message_fr"]
    # The connection is still usable and nothing was stored.
    assert await client.frames_until_pong() == []
    assert await sync_to_async(Envelope.objects.count)() == 0
    await client.close()


async def test_oversize_frame_closes_with_1009(runtime, care_room, tokens):
    client = Client(token=tokens["nurse"][1])
    await client.start()
    await client.send_raw(
        json.dumps({"type": "send", "room": care_room.pk, "id": "big", "body": "A" * 90_000})
    )
    assert (await client.receive_type("error"))["code"] == "frame_too_large"
    assert await client.expect_close() == 1009
    assert await sync_to_async(Envelope.objects.count)() == 0


async def test_oversize_body_is_refused(runtime, care_room, tokens, settings):
    settings.RELAIS = {**settings.RELAIS, "MAX_BODY_BYTES": 10}
    client = Client(token=tokens["nurse"][1])
    await client.start()
    await client.send({"type": "send", "room": care_room.pk, "id": "b", "body": body("x" * 11)})
    error = await client.receive_type("error")
    assert (error["code"], error["ref"]) == ("body_too_large", "b")
    await client.send({"type": "send", "room": care_room.pk, "id": "c", "body": body("x" * 10)})
    assert (await client.receive_type("ack"))["seq"] == 1
    await client.close()


async def test_binary_frame_closes_with_4003(runtime, tokens):
    client = Client(token=tokens["nurse"][1])
    await client.start()
    await client.communicator.send_to(bytes_data=b"\x00\x01")
    assert (await client.receive_type("error"))["code"] == "bad_frame"
    assert await client.expect_close() == 4003


async def test_send_to_a_room_of_others_is_refused(runtime, care_room, tokens):
    physio = Client(token=tokens["physio"][1])
    await physio.start()
    for room in (care_room.pk, 999_999):
        await physio.send({"type": "send", "room": room, "id": f"x{room}", "body": body("x")})
        error = await physio.receive_type("error")
        assert (error["code"], error["ref"]) == ("not_member", f"x{room}")
    await physio.send({"type": "typing", "room": care_room.pk, "active": True})
    assert (await physio.receive_type("error"))["code"] == "not_member"
    await physio.send({"type": "receipt", "room": care_room.pk, "seq": 1, "kind": "read"})
    assert (await physio.receive_type("error"))["code"] == "not_member"
    assert await sync_to_async(Envelope.objects.count)() == 0
    await physio.close()


async def test_flooding_is_rate_limited_then_closed(
    runtime: Runtime, clock: ManualClock, care_room, tokens, small_limits
):
    client = Client(token=tokens["nurse"][1])
    assert await client.connect()
    await client.receive_type("ready")
    for _ in range(5):  # the burst
        await client.send({"type": "typing", "room": care_room.pk, "active": True})
    await client.send({"type": "typing", "room": care_room.pk, "active": True})
    assert (await client.receive_type("error"))["code"] == "rate_limited"
    clock.advance(1.0)  # five new tokens
    await client.send({"type": "ping", "nonce": "after"})
    assert (await client.receive_type("pong"))["nonce"] == "after"
    for _ in range(5):
        await client.send({"type": "typing", "room": care_room.pk, "active": True})
    await client.send({"type": "typing", "room": care_room.pk, "active": False})
    assert (await client.receive_type("error"))["code"] == "rate_limited"
    await client.send({"type": "typing", "room": care_room.pk, "active": False})
    assert await client.expect_close() == 4008


async def test_sync_sends_backlog_in_order_then_live(
    runtime: Runtime, care_room, tokens, small_limits
):
    nurse_device, nurse_token = tokens["nurse"]
    for number in range(1, 8):
        await runtime.store.append(
            AppendRequest(
                room_id=care_room.pk,
                device_id=nurse_device,
                practitioner_id="810003456786",
                client_id=f"old-{number}",
                body=f"m{number}".encode(),
            )
        )
    doctor = Client(token=tokens["doctor"][1])
    assert await doctor.connect()
    ready = await doctor.receive_type("ready")
    assert ready["rooms"] == {str(care_room.pk): 7}
    await doctor.send({"type": "sync", "rooms": {str(care_room.pk): 2}})
    pages = [await doctor.receive_type("backlog") for _ in range(2)]
    assert [m["seq"] for page in pages for m in page["messages"]] == [3, 4, 5, 6, 7]
    assert [page["more"] for page in pages] == [True, False]
    assert base64.urlsafe_b64decode(pages[0]["messages"][0]["body"] + "==") == b"m3"
    assert (await doctor.receive_type("synced"))["rooms"] == {str(care_room.pk): 7}

    nurse = Client(token=nurse_token)
    await nurse.start()
    await nurse.send({"type": "send", "room": care_room.pk, "id": "live", "body": body("x")})
    assert (await doctor.receive_type("message"))["seq"] == 8
    await doctor.close()
    await nurse.close()


async def test_backlog_frames_stay_under_128_kib_with_large_bodies(
    runtime: Runtime, care_room, tokens
):
    """Daphne (autobahn) refuses to send a frame over its limit: pages split by size."""
    nurse_device, _nurse_token = tokens["nurse"]
    # A page of 500 small envelopes would pass the limit too, by their other fields.
    sizes_to_send = [40 * 1024] * 12 + [200] * 600
    count = len(sizes_to_send)
    for number, size in enumerate(sizes_to_send, start=1):
        await runtime.store.append(
            AppendRequest(
                room_id=care_room.pk,
                device_id=nurse_device,
                practitioner_id="810003456786",
                client_id=f"envelope-{number:04d}-" + "x" * 50,
                body=bytes([number % 256]) * size,
            )
        )
    doctor = Client(token=tokens["doctor"][1])
    assert await doctor.connect()
    await doctor.receive_type("ready")
    await doctor.send({"type": "sync", "rooms": {str(care_room.pk): 0}})
    sizes: list[int] = []
    seqs: list[int] = []
    while True:
        output = await doctor.communicator.receive_output(timeout=5)
        frame = json.loads(output["text"])
        if frame["type"] == "synced":
            break
        sizes.append(len(output["text"].encode()))
        seqs.extend(m["seq"] for m in frame["messages"])
    assert seqs == list(range(1, count + 1))
    assert len(sizes) > 1
    assert max(sizes) < 128 * 1024
    await doctor.close()


async def test_sync_errors_for_foreign_room_and_future_seq(runtime, care_room, tokens):
    doctor = Client(token=tokens["doctor"][1])
    assert await doctor.connect()
    await doctor.receive_type("ready")
    await doctor.send({"type": "sync", "rooms": {str(care_room.pk): 5, "424242": 0}})
    errors = {(await doctor.receive_type("error"))["code"] for _ in range(2)}
    assert errors == {"bad_sequence", "not_member"}
    assert (await doctor.receive_type("synced"))["rooms"] == {}
    await doctor.close()


async def test_a_device_never_gets_its_own_envelope_back_live(runtime: Runtime, care_room, tokens):
    """The sender has its ack, not a copy: even when a later envelope makes the
    connection fill the gap its own envelope left in the live stream."""
    nurse = Client(token=tokens["nurse"][1])
    doctor = Client(token=tokens["doctor"][1])
    for client in (nurse, doctor):
        await client.start()
    await nurse.send({"type": "send", "room": care_room.pk, "id": "own", "body": body("a")})
    assert (await nurse.receive_type("ack"))["seq"] == 1
    assert (await doctor.receive_type("message"))["id"] == "own"
    await doctor.send({"type": "send", "room": care_room.pk, "id": "other", "body": body("b")})
    assert (await doctor.receive_type("ack"))["seq"] == 2
    frames = await nurse.frames_until_pong()
    assert [(f["type"], f.get("seq"), f.get("id")) for f in frames] == [("message", 2, "other")]
    for client in (nurse, doctor):
        await client.close()


async def test_live_gap_is_filled_from_the_database(runtime: Runtime, care_room, tokens):
    """An event lost on the way (the channel layer is lossy) is recovered, in order."""
    nurse_device, nurse_token = tokens["nurse"]
    doctor = Client(token=tokens["doctor"][1])
    await doctor.start()
    # Stored and committed but never published: as if its event had been dropped.
    await runtime.store.append(
        AppendRequest(
            room_id=care_room.pk,
            device_id=nurse_device,
            practitioner_id="810003456786",
            client_id="lost",
            body=b"lost",
        )
    )
    nurse = Client(token=nurse_token)
    await nurse.start()
    await nurse.send({"type": "send", "room": care_room.pk, "id": "next", "body": body("next")})
    first, second = await doctor.receive_type("message"), await doctor.receive_type("message")
    assert [(first["seq"], first["id"]), (second["seq"], second["id"])] == [
        (1, "lost"),
        (2, "next"),
    ]
    await doctor.close()
    await nurse.close()


async def test_receipts_move_the_cursor_forward_only_and_reach_the_room(runtime, care_room, tokens):
    nurse = Client(token=tokens["nurse"][1])
    doctor = Client(token=tokens["doctor"][1])
    await nurse.start()
    await doctor.start()
    for number in (1, 2):
        await nurse.send(
            {"type": "send", "room": care_room.pk, "id": f"r{number}", "body": body("x")}
        )
        await nurse.receive_type("ack")
        await doctor.receive_type("message")
    await doctor.send({"type": "receipt", "room": care_room.pk, "seq": 2, "kind": "read"})
    receipt = await nurse.receive_type("receipt")
    assert receipt == {
        "type": "receipt",
        "room": care_room.pk,
        "seq": 2,
        "kind": "read",
        "device": tokens["doctor"][0],
        "practitioner": "810001987659",
    }
    await doctor.send({"type": "receipt", "room": care_room.pk, "seq": 1, "kind": "delivered"})
    await nurse.receive_type("receipt")
    cursor = await sync_to_async(DeviceCursor.objects.get)(device_id=tokens["doctor"][0])
    assert (cursor.delivered_seq, cursor.read_seq) == (2, 2)
    await doctor.send({"type": "receipt", "room": care_room.pk, "seq": 3, "kind": "read"})
    assert (await doctor.receive_type("error"))["code"] == "bad_sequence"
    await nurse.close()
    await doctor.close()


async def test_typing_reaches_others_but_not_the_typing_device(runtime, care_room, tokens):
    nurse = Client(token=tokens["nurse"][1])
    doctor = Client(token=tokens["doctor"][1])
    await nurse.start()
    await doctor.start()
    await nurse.send({"type": "typing", "room": care_room.pk, "active": True})
    typing = await doctor.receive_type("typing")
    assert (typing["practitioner"], typing["active"]) == ("810003456786", True)
    assert await nurse.frames_until_pong() == []
    await nurse.close()
    await doctor.close()


async def test_added_member_receives_from_now_and_removed_member_stops(
    runtime, care_room, tokens, practitioners
):
    nurse = Client(token=tokens["nurse"][1])
    physio = Client(token=tokens["physio"][1])
    await nurse.start()
    await physio.start()
    await nurse.send({"type": "send", "room": care_room.pk, "id": "before", "body": body("b")})
    await nurse.receive_type("ack")

    await sync_to_async(do_add_member)(
        actor=practitioners["nurse"], room_id=care_room.pk, practitioner_id="810004123450"
    )
    joined = await physio.receive_type("membership")
    assert (joined["action"], joined["room"]) == ("added", care_room.pk)
    assert (await nurse.receive_type("membership"))["practitioner"] == "810004123450"
    await nurse.send({"type": "send", "room": care_room.pk, "id": "after", "body": body("a")})
    await nurse.receive_type("ack")
    message = await physio.receive_type("message")
    assert (message["seq"], message["id"]) == (2, "after")  # nothing from before joining

    await sync_to_async(do_remove_member)(
        actor=practitioners["nurse"], room_id=care_room.pk, practitioner_id="810004123450"
    )
    assert (await physio.receive_type("membership"))["action"] == "removed"
    await nurse.receive_type("membership")
    await nurse.send({"type": "send", "room": care_room.pk, "id": "gone", "body": body("g")})
    await nurse.receive_type("ack")
    assert await physio.frames_until_pong() == []
    await physio.send({"type": "send", "room": care_room.pk, "id": "p", "body": body("p")})
    assert (await physio.receive_type("error"))["code"] == "not_member"
    await nurse.close()
    await physio.close()
