"""``chat.connection.Connection`` without an ASGI server: slow clients, ordering."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async as sync_to_async

from chat.connection import Connection
from chat.delivery import CLOSE_TOO_SLOW
from chat.fanout import HubEvent, room_topic
from chat.services.devices import DeviceIdentity
from tests.signed_rooms import create_room as do_create_room

pytestmark = pytest.mark.django_db(transaction=True)


class StalledClient:
    """A client whose socket accepts the first ``capacity`` frames and then blocks."""

    def __init__(self, capacity: int) -> None:
        self.frames: list[str] = []
        self.capacity = capacity
        self.closed_with: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._never = asyncio.Event()

    async def send_text(self, text: str) -> None:
        if len(self.frames) >= self.capacity:
            await self._never.wait()
        self.frames.append(text)

    async def close(self, code: int) -> None:
        if not self.closed_with.done():
            self.closed_with.set_result(code)


async def test_a_device_that_cannot_keep_up_is_disconnected(runtime, practitioners, small_limits):
    room = await sync_to_async(do_create_room)(
        creator=practitioners["nurse"],
        kind="direct",
        member_ids=[practitioners["doctor"].national_id],
    )
    client = StalledClient(capacity=2)  # ready + synced, then the socket stalls
    connection = Connection(runtime=runtime, send_text=client.send_text, close=client.close)
    identity = DeviceIdentity(device_id=1, practitioner_id=practitioners["doctor"].national_id)
    await connection.open(identity=identity, header_failed=False)
    await connection.receive_text('{"type": "sync"}')
    for seq in range(1, 20):
        runtime.hub.publish(
            room_topic(room.pk),
            HubEvent(kind="message", room=room.pk, seq=seq, text=f"m{seq}", device=99),
        )
    assert await asyncio.wait_for(client.closed_with, timeout=5) == CLOSE_TOO_SLOW
    await connection.closed()
    assert runtime.hub.local_subscriber_count(room_topic(room.pk)) == 0
