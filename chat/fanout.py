"""Fan-out of events to connected devices: the only module that broadcasts.

Each server process has one hub. Connections subscribe to topics (their rooms, their
practitioner, their device). ``publish`` delivers at once to the local subscribers of
the topic and, when Redis is configured, publishes the event once on Redis for the
other processes. Each process holds a single Redis subscription connection and fans
out in memory, instead of one channel-layer channel per connection: this is what keeps
the per-message cost low (docs/performance.md).

Events are published only after the database transaction that produced them has
committed: services call ``publish`` after a store commit, or ``publish_on_commit``
from synchronous ORM code.

The live stream is best effort; the database is the truth. A connection that misses an
event notices a sequence gap at the next event and fills it from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from django.db import transaction

logger = logging.getLogger(__name__)


class HubEvent(msgspec.Struct, array_like=True, frozen=True):
    """Something to tell the subscribers of a topic.

    ``text`` is the frame to forward as is (serialised once for every recipient).
    ``kind`` tells the connection what to do besides forwarding it:
    ``message`` (an envelope: order by ``seq``), ``frame`` (forward),
    ``member_added`` / ``member_removed`` (``practitioner`` joined or left ``room``),
    ``device_revoked`` (close the connection).
    """

    kind: str
    room: int = 0
    seq: int = 0
    text: str = ""
    device: int = 0
    practitioner: str = ""


class _WireEvent(msgspec.Struct, array_like=True, frozen=True):
    origin: str
    topic: str
    event: HubEvent


class Subscriber(Protocol):
    def on_event(self, event: HubEvent) -> None:
        """Called in the hub's event loop; must not block."""
        ...


def room_topic(room_id: int) -> str:
    return f"room.{room_id}"


def practitioner_topic(practitioner_id: str) -> str:
    return f"practitioner.{practitioner_id}"


def device_topic(device_id: int) -> str:
    return f"device.{device_id}"


class FanoutHub:
    """In-process fan-out, bridged across processes through Redis when configured."""

    def __init__(self, *, redis_url: str = "", channel_prefix: str = "relais") -> None:
        self.origin = uuid.uuid4().hex
        self._redis_url = redis_url
        self._prefix = channel_prefix + ":"
        self._local: dict[str, set[Subscriber]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._outbox: list[tuple[str, bytes]] = []
        self._outbox_ready = asyncio.Event()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(_WireEvent)

    @property
    def uses_redis(self) -> bool:
        return bool(self._redis_url)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        _register(self)
        if not self._redis_url:
            return
        import redis.asyncio as redis_asyncio

        self._redis = redis_asyncio.Redis.from_url(self._redis_url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=False)
        # A subscription of its own keeps the reader valid while no room is subscribed.
        own_channel = f"{self._prefix}hub.{self.origin}"
        confirmed = self._expect_confirmation(own_channel)
        await self._pubsub.subscribe(own_channel)
        self._reader = asyncio.create_task(self._read_forever(), name="relais-hub-reader")
        self._publisher = asyncio.create_task(self._publish_forever(), name="relais-hub-publisher")
        await asyncio.wait_for(confirmed, timeout=10)

    async def close(self) -> None:
        _unregister(self)
        for task in (self._reader, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reader = self._publisher = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Add a local subscriber; returns once events of the topic will reach it."""
        subscribers = self._local[topic]
        first = not subscribers
        subscribers.add(subscriber)
        if first and self._pubsub is not None:
            channel = self._prefix + topic
            confirmed = self._expect_confirmation(channel)
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(confirmed, timeout=10)

    async def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        subscribers = self._local.get(topic)
        if not subscribers:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._local[topic]
            if self._pubsub is not None:
                await self._pubsub.unsubscribe(self._prefix + topic)

    def local_subscriber_count(self, topic: str) -> int:
        return len(self._local.get(topic, ()))

    def publish(self, topic: str, event: HubEvent) -> None:
        """Deliver to local subscribers now and queue the event for other processes.

        Call only after the transaction that produced the event has committed.
        """
        self._deliver_locally(topic, event)
        for listener in _publish_listeners:
            try:
                listener(topic, event)
            except Exception:
                logger.exception("a publish listener failed on an event of kind %s", event.kind)
        if self._redis is not None:
            payload = self._encoder.encode(_WireEvent(origin=self.origin, topic=topic, event=event))
            self._outbox.append((self._prefix + topic, payload))
            self._outbox_ready.set()

    def publish_threadsafe(self, topic: str, event: HubEvent) -> None:
        """``publish`` from any thread (synchronous Django code runs in worker threads)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.publish(topic, event)
        else:
            loop.call_soon_threadsafe(self.publish, topic, event)

    async def check(self) -> dict[str, str]:
        """Health of the cross-process link, for /healthz."""
        if self._redis is None:
            return {"fanout": "in-process"}
        await self._redis.ping()
        return {"fanout": "redis"}

    def _deliver_locally(self, topic: str, event: HubEvent) -> None:
        for subscriber in tuple(self._local.get(topic, ())):
            try:
                subscriber.on_event(event)
            except Exception:
                logger.exception("a subscriber failed to take an event of kind %s", event.kind)

    def _expect_confirmation(self, channel: str) -> asyncio.Future[None]:
        future = self._confirmations.get(channel)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._confirmations[channel] = future
        return future

    async def _read_forever(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reading from Redis failed; retrying")
                await asyncio.sleep(1)
                continue
            if message is None:
                continue
            self._on_redis_message(message)

    def _on_redis_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        channel_name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "subscribe":
            future = self._confirmations.pop(channel_name, None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        if kind != "message":
            return
        try:
            wire = self._decoder.decode(message["data"])
        except msgspec.DecodeError:
            logger.warning("ignored a malformed event on %s", channel_name)
            return
        if wire.origin != self.origin:
            self._deliver_locally(wire.topic, wire.event)

    async def _publish_forever(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            batch, self._outbox = self._outbox, []
            if not batch:
                continue
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    for tap in _pipeline_taps:
                        try:
                            tap(pipe)
                        except Exception:
                            logger.exception("a pipeline tap failed")
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Other processes' devices will fill the gap from the database.
                logger.exception("publishing %d events to Redis failed", len(batch))


# Called with every event this process publishes, in the hub's event loop, after the
# local delivery. A listener must not block: Web Push (push.feed) queues a job there.
PublishListener = Callable[[str, HubEvent], None]
_publish_listeners: list[PublishListener] = []


def add_publish_listener(listener: PublishListener) -> None:
    """Have ``listener`` called for every event published by this process (idempotent)."""
    if listener not in _publish_listeners:
        _publish_listeners.append(listener)


# Called with the hub's Redis pipeline before each publish round trip, in the hub's
# event loop: a tap adds its own commands (Web Push appends its jobs to a stream) and
# they travel in the same round trip, at no extra cost to the send path.
PipelineTap = Callable[[Any], None]
_pipeline_taps: list[PipelineTap] = []


def add_pipeline_tap(tap: PipelineTap) -> None:
    """Have ``tap(pipeline)`` called before each Redis publish of this process (idempotent)."""
    if tap not in _pipeline_taps:
        _pipeline_taps.append(tap)


# The hub that synchronous code (REST views, admin) publishes to. A server process has
# one event loop and so one hub; tests may start several, the latest wins.
_registered: list[FanoutHub] = []
_registry_lock = threading.Lock()


def _register(hub: FanoutHub) -> None:
    with _registry_lock:
        _registered.append(hub)


def _unregister(hub: FanoutHub) -> None:
    with _registry_lock:
        if hub in _registered:
            _registered.remove(hub)


def publish_from_sync(topic: str, event: HubEvent) -> None:
    """Publish from synchronous code, to this process's hub and through Redis."""
    with _registry_lock:
        hub = _registered[-1] if _registered else None
    if hub is not None:
        hub.publish_threadsafe(topic, event)
        return
    _publish_without_hub(topic, event)


def _publish_without_hub(topic: str, event: HubEvent) -> None:
    """A process with no running hub (a management command) still reaches the servers."""
    from chat.conf import relais_settings

    settings = relais_settings()
    redis_url = settings.redis_url
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        payload = msgspec.msgpack.encode(_WireEvent(origin="sync", topic=topic, event=event))
        client.publish(f"{settings.redis_prefix}:{topic}", payload)
    except Exception:
        logger.exception("publishing an event of kind %s failed", event.kind)
    finally:
        client.close()


def publish_on_commit(topic: str, event: HubEvent) -> None:
    """Publish once the current database transaction commits (never before)."""
    transaction.on_commit(lambda: publish_from_sync(topic, event))
