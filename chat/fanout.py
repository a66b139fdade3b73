"""Fan-out of events to connected devices: the only module that broadcasts.

Each server process has one hub. Connections subscribe to topics (their rooms, their
practitioner, their device). ``publish`` delivers at once to the local subscribers of
the topic and, when Redis is configured, queues the event for the other processes.

Across processes the hub uses one Redis pub/sub channel per deployment
(``<prefix>:events``), to which every process subscribes once at start. The publisher
task sends what accumulated while its previous publish was in flight as *one* Redis
message (a batch of events, prefixed by the publishing process's id); each process
skips its own batches without decoding them and hands the others' events to its local
subscribers of the topic, if any. Compared with a Redis channel per topic (or the
Channels layer's channel per connection), this costs one publish and one read per
batch instead of per event, subscribing to a room costs no Redis round trip, and a
process never parses its own echoes. Every process sees every event, which suits a
deployment of a few server processes per host; the scale path (docs/architecture.md)
shards the channel by room for Redis Cluster when that stops being true.

Events are published only after the database transaction that produced them has
committed: services call ``publish`` after a store commit, or ``publish_on_commit``
from synchronous ORM code.

The live stream is best effort; the database is the truth. A connection that misses an
event notices a sequence gap at the next event and fills it from the database.

When Redis goes away, nothing waits for the next message: the reader reconnects (every
``RETRY_SECONDS``) and, once subscribed again, tells the reconnect listeners (the
runtime), which have every local connection fill what it missed from the database.
A batch the publisher could not send is dropped (the database has its envelopes) and the
next batch that gets through carries a ``catch_up`` signal, so that every process
catches up too, even one whose own subscription never broke. Each change of state is
logged once (``chat.outages``), not once per failed operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final, Protocol

import msgspec
from django.db import transaction

from chat.outages import OutageLog, describe
from observability import metrics

logger = logging.getLogger(__name__)

ORIGIN_BYTES: Final = 16
"""Length of the publishing process's id at the start of every Redis batch."""
HEADER_BYTES: Final = ORIGIN_BYTES + 8
"""The origin, then the publish time (Unix microseconds, 8 bytes big-endian): the
receiving processes measure the fan-out lag from it (``relais_fanout_lag_seconds``)."""

MAX_BATCH_EVENTS: Final = 1024
_CLOSE_TIMEOUT_SECONDS: Final = 5
RETRY_SECONDS: Final = 0.25
"""How often the hub tries Redis again while it is away."""
CATCH_UP_TOPIC: Final = "hub.catch_up"
"""A batch event on this topic asks every process to catch its connections up."""


class HubEvent(msgspec.Struct, array_like=True, frozen=True):
    """Something to tell the subscribers of a topic.

    ``text`` is the frame to forward as is (serialised once for every recipient).
    ``kind`` tells the connection what to do besides forwarding it:
    ``message`` (an envelope: order by ``seq``), ``frame`` (forward),
    ``member_added`` / ``member_removed`` (``practitioner`` joined or left ``room``),
    ``device_revoked`` (close the connection), ``catch_up`` (fetch ``room`` up to
    ``seq`` from the database: the live stream may have missed envelopes).
    """

    kind: str
    room: int = 0
    seq: int = 0
    text: str = ""
    device: int = 0
    practitioner: str = ""


class TopicEvent(msgspec.Struct, array_like=True, frozen=True):
    topic: str
    event: HubEvent


_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[TopicEvent])


def encode_batch(origin: bytes, events: list[TopicEvent]) -> bytes:
    """A Redis batch: the origin's 16 bytes, the publish time, then the events as msgpack."""
    published_us = time.time_ns() // 1000
    return origin + published_us.to_bytes(8, "big") + _batch_encoder.encode(events)


def decode_batch(payload: bytes) -> tuple[bytes, list[TopicEvent]]:
    """The origin and events of a Redis batch; raises msgspec.DecodeError when malformed."""
    return payload[:ORIGIN_BYTES], _batch_decoder.decode(payload[HEADER_BYTES:])


def batch_age_seconds(payload: bytes) -> float:
    """Seconds since the batch was published (by the wall clocks of two processes)."""
    published_us = int.from_bytes(payload[ORIGIN_BYTES:HEADER_BYTES], "big")
    return time.time() - published_us / 1_000_000


def events_channel(prefix: str) -> str:
    """The Redis channel every server process of a deployment listens to."""
    return f"{prefix}:events"


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


ReconnectListener = Callable[[], None]


class FanoutHub:
    """In-process fan-out, bridged across processes through Redis when configured."""

    def __init__(self, *, redis_url: str = "", channel_prefix: str = "relais") -> None:
        self.origin = uuid.uuid4().bytes
        self._redis_url = redis_url
        self._channel = events_channel(channel_prefix)
        self._local: dict[str, set[Subscriber]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._outbox: list[TopicEvent] = []
        self._outbox_ready = asyncio.Event()
        self._reconnect_listeners: list[ReconnectListener] = []
        self._reading = OutageLog(what="Redis (fan-out subscription)", logger=logger)
        self._publishing = OutageLog(what="Redis (fan-out publish)", logger=logger)
        self._lost_events = False
        self.subscribed = asyncio.Event()

    @property
    def uses_redis(self) -> bool:
        return bool(self._redis_url)

    async def start(self) -> None:
        """Start the hub; with Redis, wait (a few seconds at most) until subscribed. A
        Redis that does not answer does not stop the start: the reader keeps trying."""
        self._loop = asyncio.get_running_loop()
        _register(self)
        if not self._redis_url:
            return
        import redis.asyncio as redis_asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # One immediate retry (a connection broken by a Redis restart); the hub does its
        # own, steady retrying beyond that.
        self._redis = redis_asyncio.Redis.from_url(
            self._redis_url,
            socket_connect_timeout=_CLOSE_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1),
        )
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
                await self._subscribe()
        except Exception as error:
            self._reading.failed(error)
            await self._drop_subscription()
        self._reader = asyncio.create_task(self._read_forever(), name="relais-hub-reader")
        self._publisher = asyncio.create_task(self._publish_forever(), name="relais-hub-publisher")

    async def _subscribe(self) -> None:
        """Subscribe and wait for Redis to confirm: from then on, every batch published
        by another process reaches this one."""
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(self._channel)
        async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
            while True:
                message = await self._pubsub.get_message(timeout=_CLOSE_TIMEOUT_SECONDS)
                if message is not None and message.get("type") == "subscribe":
                    self.subscribed.set()
                    return

    async def _drop_subscription(self) -> None:
        self.subscribed.clear()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
                    await pubsub.aclose()

    def add_reconnect_listener(self, listener: ReconnectListener) -> None:
        """Have ``listener`` called (in the hub's loop) whenever this process may have
        missed events: its subscription came back, or another process's publish failed."""
        self._reconnect_listeners.append(listener)

    async def close(self) -> None:
        """Stop the reader and the publisher and close the Redis connections (bounded:
        a shutdown must not hang on a half-closed socket)."""
        _unregister(self)
        for task in (self._reader, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reader = self._publisher = None
        await self._drop_subscription()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
                if self._redis is not None:
                    await self._redis.aclose()
        except TimeoutError:
            logger.warning("closing the Redis connections timed out; dropping them")
        self._redis = None

    async def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Add a local subscriber: events of the topic published from now on reach it."""
        self._local[topic].add(subscriber)

    async def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        subscribers = self._local.get(topic)
        if not subscribers:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._local[topic]

    def local_subscriber_count(self, topic: str) -> int:
        return len(self._local.get(topic, ()))

    def local_subscribers(self) -> set[Subscriber]:
        """Every local subscriber, once."""
        return {subscriber for subscribers in self._local.values() for subscriber in subscribers}

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
            self._outbox.append(TopicEvent(topic, event))
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

    async def check(self) -> dict[str, Any]:
        """Health of the cross-process link, for /healthz: subscribed, and Redis answers."""
        if self._redis is None:
            return {"fanout": "in-process"}
        if not self.subscribed.is_set():
            raise ConnectionError("not subscribed to the events channel")
        await self._redis.ping()
        return {"fanout": "redis"}

    def _deliver_locally(self, topic: str, event: HubEvent) -> None:
        subscribers = self._local.get(topic)
        if not subscribers:
            return
        for subscriber in tuple(subscribers):
            try:
                subscriber.on_event(event)
            except Exception:
                logger.exception("a subscriber failed to take an event of kind %s", event.kind)

    def _missed_events(self) -> None:
        for listener in self._reconnect_listeners:
            try:
                listener()
            except Exception:
                logger.exception("a reconnect listener failed")

    async def _read_forever(self) -> None:
        while True:
            try:
                if self._pubsub is None:
                    await self._subscribe()
                    if self._reading.recovered() is not None:
                        self._missed_events()
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=None
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._reading.failed(error)
                await self._drop_subscription()
                await asyncio.sleep(RETRY_SECONDS)  # the retry period, not a test wait
                continue
            if message is not None and message.get("type") == "message":
                self._on_batch(message["data"])

    def _on_batch(self, payload: bytes) -> None:
        if payload[:ORIGIN_BYTES] == self.origin:
            return  # this process's own batch, already delivered locally
        try:
            _origin, events = decode_batch(payload)
        except msgspec.DecodeError:
            logger.warning("ignored a malformed event batch")
            return
        for item in events:
            if item.topic == CATCH_UP_TOPIC:
                self._missed_events()
            else:
                self._deliver_locally(item.topic, item.event)
        metrics.FANOUT_LAG_SECONDS.observe(max(0.0, batch_age_seconds(payload)))

    async def _publish_forever(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = self._outbox[:MAX_BATCH_EVENTS]
                del self._outbox[:MAX_BATCH_EVENTS]
                if self._lost_events:
                    batch.append(TopicEvent(CATCH_UP_TOPIC, HubEvent(kind="catch_up")))
                undos: list[Callable[[], None]] = []
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        pipe.publish(self._channel, encode_batch(self.origin, batch))
                        for tap in _pipeline_taps:
                            try:
                                undo = tap(pipe)
                            except Exception:
                                logger.exception("a pipeline tap failed")
                                continue
                            if undo is not None:
                                undos.append(undo)
                        await pipe.execute()
                    metrics.FANOUT_BATCHES_PUBLISHED.inc()
                    metrics.FANOUT_EVENTS_PUBLISHED.inc(len(batch))
                except asyncio.CancelledError:
                    _undo_taps(undos)
                    raise
                except Exception as error:
                    # The database has these envelopes: the other processes fetch them
                    # when the catch-up signal of the next batch reaches them. What the
                    # taps added goes back to them, to ride along the next round trip.
                    _undo_taps(undos)
                    self._publishing.failed(error)
                    self._lost_events = True
                    await asyncio.sleep(RETRY_SECONDS)  # the retry period, not a test wait
                    continue
                self._lost_events = False
                self._publishing.recovered()


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
# they travel in the same round trip, at no extra cost to the send path. A tap may
# return a function the hub calls if that round trip fails, so that what it handed over
# is not lost (the push jobs go back to their feed for the next round trip).
PipelineTap = Callable[[Any], Callable[[], None] | None]
_pipeline_taps: list[PipelineTap] = []


def _undo_taps(undos: list[Callable[[], None]]) -> None:
    for undo in undos:
        try:
            undo()
        except Exception:
            logger.exception("a pipeline tap could not take back its commands")


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
        payload = encode_batch(uuid.uuid4().bytes, [TopicEvent(topic, event)])
        client.publish(events_channel(settings.redis_prefix), payload)
    except Exception as error:
        logger.warning("publishing an event of kind %s failed: %s", event.kind, describe(error))
    finally:
        client.close()


def publish_on_commit(topic: str, event: HubEvent) -> None:
    """Publish once the current database transaction commits (never before)."""
    transaction.on_commit(lambda: publish_from_sync(topic, event))
