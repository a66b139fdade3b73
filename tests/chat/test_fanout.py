"""The hub across processes: two hubs on the real Redis stand for two server processes."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis.asyncio as redis_asyncio

from chat.fanout import FanoutHub, HubEvent, decode_batch, encode_batch, events_channel


class Recorder:
    def __init__(self) -> None:
        self.events: list[HubEvent] = []
        self.arrived = asyncio.Event()

    def on_event(self, event: HubEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    async def next_event(self) -> HubEvent:
        await asyncio.wait_for(self.arrived.wait(), 5)
        self.arrived.clear()
        return self.events[-1]


@pytest.fixture
async def two_hubs():
    redis_url = os.environ.get("RELAIS_REDIS_URL", "")
    if not redis_url:
        pytest.fail("RELAIS_REDIS_URL must point to a Redis server (make test sets it)")
    prefix = f"test-hub-{uuid.uuid4().hex[:8]}"
    first = FanoutHub(redis_url=redis_url, channel_prefix=prefix)
    second = FanoutHub(redis_url=redis_url, channel_prefix=prefix)
    await first.start()
    await second.start()
    yield first, second, redis_url, prefix
    await first.close()
    await second.close()


async def test_an_event_reaches_local_and_remote_subscribers_exactly_once(two_hubs):
    first, second, _url, _prefix = two_hubs
    local, remote, elsewhere = Recorder(), Recorder(), Recorder()
    await first.subscribe("room.1", local)
    await second.subscribe("room.1", remote)
    await second.subscribe("room.2", elsewhere)

    for seq in (1, 2, 3):
        first.publish("room.1", HubEvent(kind="message", room=1, seq=seq, text=f"m{seq}"))
    while len(remote.events) < 3:
        await remote.next_event()
    # A barrier: once this later event has crossed, the first hub's own echo has too.
    barrier = Recorder()
    await first.subscribe("room.9", barrier)
    second.publish("room.9", HubEvent(kind="frame", room=9))
    await barrier.next_event()

    assert [e.seq for e in remote.events] == [1, 2, 3]  # in order
    assert [e.seq for e in local.events] == [1, 2, 3]  # once: its own echo is skipped
    assert elsewhere.events == []  # another topic hears nothing


async def test_a_malformed_batch_is_ignored_and_the_hub_keeps_working(two_hubs):
    first, second, url, prefix = two_hubs
    remote = Recorder()
    await second.subscribe("room.1", remote)
    client = redis_asyncio.Redis.from_url(url)
    await client.publish(events_channel(prefix), b"0123456789abcdef not msgpack")
    await client.aclose()
    first.publish("room.1", HubEvent(kind="message", room=1, seq=7))
    assert (await remote.next_event()).seq == 7
    assert len(remote.events) == 1


def test_batch_encoding_round_trips():
    from chat.fanout import TopicEvent

    origin = uuid.uuid4().bytes
    events = [TopicEvent("room.1", HubEvent(kind="message", room=1, seq=2, text="x"))]
    assert decode_batch(encode_batch(origin, events)) == (origin, events)
