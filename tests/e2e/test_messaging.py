"""End to end: real Daphne processes, PostgreSQL, Redis and real WebSocket clients."""

from __future__ import annotations

import asyncio
import base64

import pytest
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed

from chat.models import Envelope
from tests.e2e.client import WsClient
from tests.signed_rooms import create_room as do_create_room

pytestmark = pytest.mark.e2e


def body(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def room_and_tokens(practitioners, device_token):
    room = do_create_room(
        creator=practitioners["nurse"],
        kind="direct",
        member_ids=[practitioners["doctor"].national_id],
    )
    return room.pk, {
        "nurse": device_token(practitioners["nurse"])[1],
        "doctor_phone": device_token(practitioners["doctor"], "phone")[1],
        "doctor_tablet": device_token(practitioners["doctor"], "tablet")[1],
    }


async def send_and_ack(client: WsClient, room: int, client_id: str, text: str) -> dict:
    await client.send({"type": "send", "room": room, "id": client_id, "body": body(text)})
    return await client.receive_type("ack")


async def read_acks_until_the_socket_dies(client: WsClient, acked: dict[str, int]) -> None:
    """Collect the acks that made it out before the crash."""
    try:
        while True:
            frame = await client.receive_type("ack")
            acked[frame["id"]] = frame["seq"]
    except ConnectionClosed:
        return


async def test_send_fanout_disconnect_reconnect_catch_up_and_retry(start_server, room_and_tokens):
    server = start_server()
    room, tokens = room_and_tokens
    nurse = WsClient(server.ws_url, tokens["nurse"])
    phone = WsClient(server.ws_url, tokens["doctor_phone"])
    tablet = WsClient(server.ws_url, tokens["doctor_tablet"])
    for client in (nurse, phone, tablet):
        await client.connect()
        assert await client.sync({}) == []

    for number in range(1, 4):
        ack = await send_and_ack(nurse, room, f"m{number}", f"texte {number}")
        assert ack["seq"] == number
        for device in (phone, tablet):
            assert (await device.receive_type("message"))["seq"] == number

    await tablet.close()  # the tablet goes offline
    for number in range(4, 8):
        await send_and_ack(nurse, room, f"m{number}", f"texte {number}")
        assert (await phone.receive_type("message"))["seq"] == number

    tablet = WsClient(server.ws_url, tokens["doctor_tablet"])
    ready = await tablet.connect()
    assert ready["rooms"] == {str(room): 7}
    missed = await tablet.sync({room: 3})
    assert [m["seq"] for m in missed] == [4, 5, 6, 7]
    assert [m["id"] for m in missed] == ["m4", "m5", "m6", "m7"]

    # Live traffic continues right after the catch-up, without a gap.
    await send_and_ack(nurse, room, "m8", "texte 8")
    assert (await tablet.receive_type("message"))["seq"] == 8
    assert (await phone.receive_type("message"))["seq"] == 8

    # A retried send (same id) returns the original ack and is not delivered again.
    retry = await send_and_ack(nurse, room, "m5", "texte 5")
    assert (retry["seq"], retry["duplicate"]) == (5, True)
    assert await tablet.frames_until_pong() == []
    assert await phone.frames_until_pong() == []
    assert await database_sync_to_async(Envelope.objects.filter(room_id=room).count)() == 8
    for client in (nurse, phone, tablet):
        await client.close()


async def test_acknowledged_messages_survive_kill_9(start_server, room_and_tokens):
    room, tokens = room_and_tokens
    server = start_server()
    nurse = WsClient(server.ws_url, tokens["nurse"])
    await nurse.connect()
    await nurse.sync({})

    total = 60
    for number in range(total):  # pipelined: no waiting between sends
        await nurse.send(
            {"type": "send", "room": room, "id": f"k{number}", "body": body(f"soin {number}")}
        )
    acked: dict[str, int] = {}
    while len(acked) < 20:
        frame = await nurse.receive_type("ack")
        acked[frame["id"]] = frame["seq"]
    server.kill_hard()  # while later sends may still be in flight
    await read_acks_until_the_socket_dies(nurse, acked)

    server.start()  # same port, same database
    nurse = WsClient(server.ws_url, tokens["nurse"])
    await nurse.connect()
    await nurse.sync({})
    # The client resends everything it has no ack for, with the same ids.
    for number in range(total):
        if f"k{number}" not in acked:
            ack = await send_and_ack(nurse, room, f"k{number}", f"soin {number}")
            acked[ack["id"]] = ack["seq"]

    doctor = WsClient(server.ws_url, tokens["doctor_phone"])
    await doctor.connect()
    received = await doctor.sync({room: 0})
    assert [m["seq"] for m in received] == list(range(1, total + 1))  # no gap, no duplicate
    by_id = {m["id"]: m["seq"] for m in received}
    assert by_id == acked  # every ack, before or after the crash, names the stored seq
    assert base64.urlsafe_b64decode(received[0]["body"] + "==").startswith(b"soin ")
    await nurse.close()
    await doctor.close()


async def test_fan_out_crosses_server_processes_through_redis(start_server, room_and_tokens):
    room, tokens = room_and_tokens
    first, second = start_server(), start_server()
    nurse = WsClient(first.ws_url, tokens["nurse"])
    doctor = WsClient(second.ws_url, tokens["doctor_phone"])
    for client in (nurse, doctor):
        await client.connect()
        await client.sync({})

    async def doctor_receives(count: int) -> list[int]:
        return [(await doctor.receive_type("message"))["seq"] for _ in range(count)]

    receiving = asyncio.create_task(doctor_receives(30))
    for number in range(30):
        await send_and_ack(nurse, room, f"x{number}", "bonjour")
    assert await receiving == list(range(1, 31))
    await nurse.close()
    await doctor.close()
