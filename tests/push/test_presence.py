"""Presence: which devices are connected, in one process and across processes (Redis)."""

from __future__ import annotations

import os

import pytest
import redis.asyncio as redis_asyncio

from chat.presence import PresenceTracker, RedisPresence, presence_key, presence_tracker
from tests.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)

PREFIX = os.environ.get("RELAIS_REDIS_PREFIX", "test") + "-presence"


@pytest.fixture
async def redis():
    client = redis_asyncio.Redis.from_url(os.environ["RELAIS_REDIS_URL"])
    yield client
    keys = [key async for key in client.scan_iter(f"{PREFIX}:presence:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def tracker(clock) -> PresenceTracker:
    return PresenceTracker(redis_url=os.environ["RELAIS_REDIS_URL"], prefix=PREFIX, clock=clock)


async def test_two_processes_and_two_connections_of_one_device(redis, clock):
    first, second = tracker(clock), tracker(clock)
    reader = RedisPresence(redis=redis, prefix=PREFIX, clock=clock)
    await first.device_connected(7)
    await first.device_connected(7)  # two tabs on the same process
    await second.device_connected(7)
    await second.device_connected(8)
    assert await reader.connected({7, 8, 9}) == {7, 8}
    assert await first.connected({7, 8}) == {7}  # what this process alone knows

    await first.device_disconnected(7)
    assert await redis.zcard(presence_key(PREFIX, 7)) == 2  # one tab left on the first
    await first.device_disconnected(7)
    await second.device_disconnected(8)
    assert await reader.connected({7, 8}) == {7}  # still on the second process
    await second.device_disconnected(7)
    assert await reader.connected({7, 8}) == set()
    assert await redis.exists(presence_key(PREFIX, 7)) == 0


async def test_a_process_that_stops_refreshing_counts_for_nothing_after_the_ttl(redis, clock):
    crashed = tracker(clock)
    reader = RedisPresence(redis=redis, prefix=PREFIX, clock=clock)
    await crashed.device_connected(7)
    await crashed.close()  # as if killed: no refresh, no removal
    clock.advance(29)
    assert await reader.connected({7}) == {7}
    clock.advance(2)
    assert await reader.connected({7}) == set()


@pytest.fixture
def doctor_device(practitioners, device_token):
    return device_token(practitioners["doctor"])


@pytest.mark.usefixtures("fanout_mode")
async def test_ready_means_present_and_closing_means_absent(
    runtime, clock, doctor_device, fanout_mode
):
    device_id, token = doctor_device
    local = presence_tracker(clock=clock)
    client = Client(token=token)
    await client.start()  # has "ready"
    assert await local.connected({device_id}) == {device_id}
    if fanout_mode == "redis":
        redis = redis_asyncio.Redis.from_url(os.environ["RELAIS_REDIS_URL"])
        reader = RedisPresence(redis=redis, prefix=os.environ["RELAIS_REDIS_PREFIX"], clock=clock)
        assert await reader.connected({device_id}) == {device_id}
    await client.close()
    assert await local.connected({device_id}) == set()
    if fanout_mode == "redis":
        assert await reader.connected({device_id}) == set()
        await redis.aclose()
