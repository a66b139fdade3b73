"""How push jobs leave the send path: a listener on the fan-out hub.

``chat.fanout.FanoutHub.publish`` calls ``on_publish`` for every event, after the
envelope's transaction has committed. For a ``message`` event the listener appends a
job (room, seq, sender device) to a list and returns: no I/O, no database, no await on
the send path. Then, per server process (per event loop):

* with Redis (production), ``StreamFeed`` hands the jobs to the hub's next publish
  round trip to Redis (which carries the envelope's event anyway), as ``XADD`` to a
  Redis stream; the ``push_worker`` process consumes the stream through a consumer
  group, so jobs wait in Redis while the worker restarts;
* without Redis (the embedded default), ``LocalFeed`` puts the jobs on an in-process
  queue that a worker task in the same process consumes.

Why a stream rather than listening to the fan-out's pub/sub: docs/push.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from chat.fanout import HubEvent
from push.conf import push_settings
from push.jobs import PushJob, stream_key

logger = logging.getLogger(__name__)

LOCAL_QUEUE_LIMIT = 10_000


class Feed(Protocol):
    def add(self, job: PushJob) -> None:
        """Queue a job; must not block (called on the send path)."""
        ...

    async def close(self) -> None: ...


class StreamFeed:
    """Jobs for the Redis stream, carried by the hub's own publish round trip.

    The hub publishes every envelope to Redis anyway; ``drain_into`` (a pipeline tap of
    the hub) adds one ``XADD`` per job to that same pipeline, so push costs the send
    path no extra round trip and no task. The stream is capped (``MAXLEN ~``). The
    consumer group is created by the workers (from the stream's first entry), so jobs
    queued before any worker ever ran are not lost.
    """

    def __init__(self, *, prefix: str, maxlen: int) -> None:
        self._key = stream_key(prefix)
        self._maxlen = maxlen
        self._buffer: list[PushJob] = []
        self.appended = 0
        self.dropped = 0

    def add(self, job: PushJob) -> None:
        if len(self._buffer) >= LOCAL_QUEUE_LIMIT:
            self._drop(1)
            return
        self._buffer.append(job)

    def drain_into(self, pipe: Any) -> Callable[[], None] | None:
        """Add the waiting jobs to ``pipe``; the returned function puts them back (the
        hub calls it when the round trip to Redis fails, so a Redis outage delays pushes
        instead of losing them)."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return None
        for job in batch:
            pipe.xadd(self._key, job.to_fields(), maxlen=self._maxlen, approximate=True)
        self.appended += len(batch)
        return lambda: self._put_back(batch)

    def _put_back(self, batch: list[PushJob]) -> None:
        self.appended -= len(batch)
        room = max(0, LOCAL_QUEUE_LIMIT - len(self._buffer))
        if len(batch) > room:
            self._drop(len(batch) - room)
            batch = batch[len(batch) - room :]  # the newest are the ones still useful
        self._buffer[:0] = batch

    def _drop(self, count: int) -> None:
        before = self.dropped
        self.dropped += count
        if before // 1000 != self.dropped // 1000 or before == 0:
            logger.warning(
                "Redis has been unreachable for a while: %d pushes dropped so far", self.dropped
            )

    async def close(self) -> None:
        """Nothing to release: the hub owns the Redis connection."""


class LocalFeed:
    """An in-process queue and the worker task that consumes it (no Redis)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[PushJob] = asyncio.Queue(maxsize=LOCAL_QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None
        self.dropped = 0

    def add(self, job: PushJob) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._run_worker(), name="relais-push-worker"
            )
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.warning("the push queue is full; %d pushes dropped so far", self.dropped)

    async def _run_worker(self) -> None:
        from chat.presence import presence_tracker
        from chat.runtime import get_runtime
        from push.dispatcher import Dispatcher
        from push.sender import PushSender
        from push.worker import PushWorker, QueueSource

        settings = push_settings()
        if settings.vapid is None:
            return
        runtime = await get_runtime()
        sender = PushSender(
            vapid=settings.vapid,
            subject=settings.vapid_subject,
            ttl_seconds=settings.ttl_seconds,
            timeout_seconds=settings.request_timeout_seconds,
            concurrency=settings.concurrency,
            clock=runtime.clock,
        )
        await sender.start()
        dispatcher = Dispatcher(
            sender=sender,
            presence=presence_tracker(clock=runtime.clock),
            clock=runtime.clock,
            settings=settings,
        )
        try:
            await PushWorker(source=QueueSource(self.queue), dispatcher=dispatcher).run()
        finally:
            await sender.close()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None


_feeds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Feed] = weakref.WeakKeyDictionary()


def build_feed() -> Feed:
    from chat.conf import relais_settings

    chat_settings = relais_settings()
    if chat_settings.redis_url:
        return StreamFeed(prefix=chat_settings.redis_prefix, maxlen=push_settings().stream_maxlen)
    return LocalFeed()


def feed_for_running_loop() -> Feed:
    loop = asyncio.get_running_loop()
    feed = _feeds.get(loop)
    if feed is None:
        feed = _feeds[loop] = build_feed()
    return feed


def install_feed(feed: Feed) -> None:
    """Use ``feed`` for the running loop (tests)."""
    _feeds[asyncio.get_running_loop()] = feed


async def close_feed() -> None:
    """Close the running loop's feed (tests; process shutdown)."""
    feed = _feeds.pop(asyncio.get_running_loop(), None)
    if feed is not None:
        await feed.close()


def drain_into_pipeline(pipe: Any) -> Callable[[], None] | None:
    """The hub's pipeline tap: the running loop's stream jobs ride along its publish."""
    feed = _feeds.get(asyncio.get_running_loop())
    if isinstance(feed, StreamFeed):
        return feed.drain_into(pipe)
    return None


def on_publish(topic: str, event: HubEvent) -> None:
    """The fan-out listener: one job per committed envelope, when push is enabled."""
    if event.kind != "message" or not push_settings().enabled:
        return
    feed_for_running_loop().add(
        PushJob(room_id=event.room, seq=event.seq, sender_device_id=event.device)
    )
