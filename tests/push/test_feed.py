"""From a WebSocket send to a push: the fan-out listener, the in-process queue (no
Redis), the Redis stream and its consumer group (jobs wait for a worker that restarts)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from django.test import override_settings

from bench.faults import PrivateRedis
from chat.fanout import FanoutHub, HubEvent, room_topic
from chat.presence import RedisPresence
from push.dispatcher import Dispatcher
from push.feed import LocalFeed, StreamFeed, close_feed, feed_for_running_loop, install_feed
from push.jobs import STREAM_GROUP, PushJob, stream_key
from push.sender import PushSender
from push.worker import PushWorker, StreamSource
from tests.push.conftest import SUBJECT, aregister, identity_of
from tests.wsclient import Client

pytestmark = pytest.mark.django_db(transaction=True)


def body(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def send(client: Client, room: int, client_id: str) -> dict:
    await client.send({"type": "send", "room": room, "id": client_id, "body": body("plaie J3")})
    return await client.receive_type("ack")


@pytest.fixture
def memory_fanout(settings):
    settings.RELAIS = {**settings.RELAIS, "REDIS_URL": ""}


@pytest.fixture
async def redis_client():
    client = redis_asyncio.Redis.from_url(os.environ["RELAIS_REDIS_URL"])
    await client.delete(stream_key(os.environ["RELAIS_REDIS_PREFIX"]))  # earlier tests' jobs
    yield client
    await client.delete(stream_key(os.environ["RELAIS_REDIS_PREFIX"]))
    await client.aclose()


@pytest.mark.usefixtures("memory_fanout", "no_feed_left")
async def test_embedded_default_pushes_from_the_server_process_itself(
    runtime, receiver, care_team, push_on
):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    tablet = await aregister(receiver, identity_of(care_team, "doctor_tablet"), push_on)
    nurse = Client(token=devices["nurse_phone"][1])
    doctor_tablet = Client(token=devices["doctor_tablet"][1])
    await nurse.start()
    await doctor_tablet.start()  # connected: no push for it

    ack = await send(nurse, room.pk, "m1")
    push = await receiver.next_push()
    assert push.token == phone.token
    assert push.json() == {"room": room.pk, "seq": ack["seq"]}
    assert isinstance(feed_for_running_loop(), LocalFeed)
    assert receiver.pushes_for(tablet) == []  # decided in the same round as the phone's
    assert (await doctor_tablet.receive_type("message"))["seq"] == 1
    await nurse.close()
    await doctor_tablet.close()


@pytest.mark.usefixtures("no_feed_left")
async def test_push_disabled_queues_nothing(runtime, care_team, settings, memory_fanout):
    settings.RELAIS_PUSH = {**settings.RELAIS_PUSH, "VAPID_PRIVATE_KEY": ""}
    room, devices, _ = care_team
    feed = LocalFeed()
    install_feed(feed)
    nurse = Client(token=devices["nurse_phone"][1])
    await nurse.start()
    await send(nurse, room.pk, "m1")
    assert feed.queue.qsize() == 0
    await nurse.close()


async def stream_worker(redis, push_on, clock, *, consumer: str, claim_idle_ms: int = 60_000):
    sender = PushSender(
        vapid=push_on.vapid,
        subject=SUBJECT,
        ttl_seconds=push_on.ttl_seconds,
        timeout_seconds=5,
        concurrency=4,
        clock=clock,
    )
    await sender.start()
    prefix = os.environ["RELAIS_REDIS_PREFIX"]
    source = StreamSource(
        redis=redis,
        key=stream_key(prefix),
        consumer=consumer,
        clock=clock,
        block_ms=5000,
        claim_idle_ms=claim_idle_ms,
    )
    await source.ensure_group()
    dispatcher = Dispatcher(
        sender=sender,
        presence=RedisPresence(redis=redis, prefix=prefix, clock=clock),
        clock=clock,
        settings=push_on,
    )
    return sender, source, dispatcher


@pytest.mark.usefixtures("fanout_mode", "no_feed_left")
@pytest.mark.parametrize("fanout_mode", ["redis"], indirect=True)
async def test_with_redis_jobs_go_through_the_stream_and_wait_for_the_worker(
    runtime, receiver, care_team, push_on, clock, redis_client
):
    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    nurse = Client(token=devices["nurse_phone"][1])
    await nurse.start()

    # No worker runs yet: the jobs wait in Redis.
    for number in range(1, 4):
        await send(nurse, room.pk, f"m{number}")
    assert isinstance(feed_for_running_loop(), StreamFeed)

    # A worker reads them (Redis blocks until they are there) but dies before
    # acknowledging: they stay pending.
    sender, dead, _ = await stream_worker(redis_client, push_on, clock, consumer="dead")
    read: list = []
    while len(read) < 3:
        read += await dead.read()
    assert [job.seq for _, job in read] == [1, 2, 3]
    await sender.close()
    key = stream_key(os.environ["RELAIS_REDIS_PREFIX"])
    entries = await redis_client.xrange(key)
    # What the stream holds: room, seq and sender device, never the envelope.
    nurse_device = str(devices["nurse_phone"][0]).encode()
    assert [fields for _, fields in entries] == [
        {b"r": str(room.pk).encode(), b"s": str(seq).encode(), b"d": nurse_device}
        for seq in (1, 2, 3)
    ]
    pending = await redis_client.xpending(key, STREAM_GROUP)
    assert pending["pending"] == 3

    # Another worker claims what the dead one left, sends, acknowledges.
    sender, source, dispatcher = await stream_worker(
        redis_client, push_on, clock, consumer="alive", claim_idle_ms=0
    )
    entries = await source.read()
    assert [job.seq for _, job in entries] == [1, 2, 3]
    await dispatcher.add_jobs([job for _, job in entries])
    await source.ack([entry_id for entry_id, _ in entries])
    await dispatcher.send_due()
    await dispatcher.wait_idle()
    # Three envelopes while the phone was offline: one push, for the newest.
    assert [p.json() for p in receiver.pushes_for(phone)] == [{"room": room.pk, "seq": 3}]
    assert (await redis_client.xpending(key, STREAM_GROUP))["pending"] == 0
    await sender.close()
    await nurse.close()


@pytest.mark.usefixtures("fanout_mode", "no_feed_left")
@pytest.mark.parametrize("fanout_mode", ["redis"], indirect=True)
async def test_the_worker_loop_sends_live_pushes_from_the_stream(
    runtime, receiver, care_team, push_on, clock, redis_client
):
    import asyncio

    room, devices, _ = care_team
    phone = await aregister(receiver, identity_of(care_team, "doctor_phone"), push_on)
    sender, source, dispatcher = await stream_worker(redis_client, push_on, clock, consumer="w1")
    worker = asyncio.create_task(PushWorker(source=source, dispatcher=dispatcher).run())
    nurse = Client(token=devices["nurse_phone"][1])
    await nurse.start()
    try:
        ack = await send(nurse, room.pk, "m1")
        push = await receiver.next_push()
        assert (push.token, push.json()) == (phone.token, {"room": room.pk, "seq": ack["seq"]})
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await sender.close()
        await nurse.close()


async def test_a_failing_listener_never_breaks_the_send_path(runtime, care_team, settings):
    """The hub catches a listener's error: the sender still gets its ack."""
    room, devices, _ = care_team
    with override_settings(RELAIS_PUSH={**settings.RELAIS_PUSH, "VAPID_PRIVATE_KEY": "AAAA"}):
        # An unusable key makes the listener raise on the first envelope.
        nurse = Client(token=devices["nurse_phone"][1])
        doctor = Client(token=devices["doctor_phone"][1])
        await nurse.start()
        await doctor.start()
        assert (await send(nurse, room.pk, "m1"))["seq"] == 1
        assert (await doctor.receive_type("message"))["seq"] == 1
        await nurse.close()
        await doctor.close()


async def test_push_jobs_wait_out_a_redis_outage_instead_of_being_lost(tmp_path):
    """While Redis is down the hub's round trips fail: the push jobs they carried go back
    to the feed and reach the stream with the first round trip after Redis is back, in
    order, once each."""
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    prefix = "outage-test"
    hub = FanoutHub(redis_url=redis_server.url, channel_prefix=prefix)
    await hub.start()
    feed = StreamFeed(prefix=prefix, maxlen=1000)
    install_feed(feed)

    async def stream_seqs() -> list[int] | None:
        client = redis_asyncio.Redis.from_url(redis_server.url)
        try:
            entries: Any = await client.xrange(stream_key(prefix))
            return [PushJob.from_entry(entry.decode(), fields).seq for entry, fields in entries]
        except redis_asyncio.ConnectionError:
            return None
        finally:
            await client.aclose()

    async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not await condition():
            assert loop.time() < deadline, what
            await asyncio.sleep(0.05)  # polling a condition, bounded by the deadline

    def publish(seq: int) -> None:
        feed.add(PushJob(room_id=7, seq=seq, sender_device_id=1))
        hub.publish(room_topic(7), HubEvent(kind="frame", room=7, seq=seq))

    async def stream_is(expected: list[int]) -> bool:
        return await stream_seqs() == expected

    async def round_trip_failed() -> bool:
        return hub._publishing.failures > 0

    try:
        publish(1)
        await until(lambda: stream_is([1]), "the first job never reached the stream")
        redis_server.stop()  # SIGKILL: the stream, which Redis kept in memory, is gone
        publish(2)
        publish(3)
        await until(round_trip_failed, "the hub never tried Redis while it was down")
        redis_server.start()
        publish(4)
        await until(lambda: stream_is([2, 3, 4]), "jobs queued during the outage were lost")
        assert feed.dropped == 0
    finally:
        await close_feed()
        await hub.close()
        redis_server.destroy()
