"""Presence through faults: a mass disconnect and a lost Redis link never leave a device
"online" (so it would get no Web Push) for longer than a moment."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from bench.faults import PrivateRedis
from chat.clock import ManualClock
from chat.presence import PresenceTracker, RedisPresence

PREFIX = os.environ.get("RELAIS_REDIS_PREFIX", "test") + "-presence-faults"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    started = PrivateRedis(tmp_path)
    started.start()
    yield started
    started.destroy()


@pytest.fixture
async def reader(private_redis: PrivateRedis, clock: ManualClock) -> AsyncIterator[RedisPresence]:
    client = redis_asyncio.Redis.from_url(private_redis.url)
    yield RedisPresence(redis=client, prefix=PREFIX, clock=clock)
    await client.aclose()


async def test_two_hundred_devices_closing_at_once_are_all_offline_at_once(
    private_redis: PrivateRedis, reader: RedisPresence, clock: ManualClock
):
    tracker = PresenceTracker(redis_url=private_redis.url, prefix=PREFIX, clock=clock)
    devices = list(range(1, 201))
    await asyncio.gather(*(tracker.device_connected(device) for device in devices))
    assert await reader.connected(devices) == set(devices)
    await asyncio.gather(*(tracker.device_disconnected(device) for device in devices))
    assert await reader.connected(devices) == set()
    assert tracker.pending_removals == 0


class CutLink:
    """A TCP relay to Redis that can be cut (connections dropped, new ones refused)
    and restored, as a network fault between a server and Redis."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def sever(self) -> None:
        self.cut = True
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self.sever()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_removal_that_failed_while_redis_was_cut_off_is_done_when_it_is_back(
    private_redis: PrivateRedis, reader: RedisPresence, clock: ManualClock
):
    link = CutLink(private_redis.port)
    await link.start()
    tracker = PresenceTracker(
        redis_url=f"redis://127.0.0.1:{link.port}/0", prefix=PREFIX, clock=clock
    )
    await tracker.device_connected(7)
    await tracker.device_connected(8)
    link.sever()
    await tracker.device_disconnected(7)  # cannot reach Redis: stays pending
    assert await reader.connected({7, 8}) == {7, 8}
    link.cut = False
    for _ in range(100):  # retried every half second; far less than the 30 s TTL
        if await reader.connected({7, 8}) == {8}:
            break
        await asyncio.sleep(0.05)  # polling Redis from outside: nothing to await
    assert await reader.connected({7, 8}) == {8}
    assert tracker.pending_removals == 0
    await tracker.device_disconnected(8)
    assert await reader.connected({7, 8}) == set()
    await tracker.close()
    await link.close()
