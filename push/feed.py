"""How push jobs leave the send path: a listener on the fan-out hub.

``chat.fanout.FanoutHub.publish`` calls ``on_publish`` for every event, after the
envelope's transaction has committed. For a ``message`` event the listener appends a
job (room, seq, sender device) to a list and returns: no I/O, no database, no await on
the send path. Then, per server process (per event loop):

* with Redis (production), ``StreamFeed`` appends the jobs to a Redis stream in one
  pipelined round trip per batch, from its own task; the ``push_worker`` process
  consumes the stream through a consumer group, so jobs wait in Redis while the worker
  restarts;
* without Redis (the embedded default), ``LocalFeed`` puts the jobs on an in-process
  queue that a worker task in the same process consumes.

Why a stream rather than listening to the fan-out's pub/sub: docs/push.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any, Protocol

from chat.fanout import HubEvent
from push.conf import push_settings
from push.jobs import STREAM_GROUP, PushJob, stream_key

logger = logging.getLogger(__name__)

LOCAL_QUEUE_LIMIT = 10_000


class Feed(Protocol):
    def add(self, job: PushJob) -> None:
        """Queue a job; must not block (called on the send path)."""
        ...

    async def close(self) -> None: ...


class StreamFeed:
    """Appends jobs to the Redis stream; batches whatever arrives during a round trip."""

    def __init__(self, *, redis_url: str, prefix: str, maxlen: int) -> None:
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.Redis.from_url(redis_url)
        self._key = stream_key(prefix)
        self._maxlen = maxlen
        self._buffer: list[PushJob] = []
        self._flushing: asyncio.Task[None] | None = None
        self._group_ready = False
        self.appended = 0

    def add(self, job: PushJob) -> None:
        self._buffer.append(job)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(
                self._flush(), name="relais-push-feed"
            )

    async def _flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer, []
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    if not self._group_ready:
                        # Created at the stream's end before the first entry, so the
                        # workers see every entry, even those added before they start.
                        pipe.xgroup_create(self._key, STREAM_GROUP, id="$", mkstream=True)
                    for job in batch:
                        pipe.xadd(self._key, job.to_fields(), maxlen=self._maxlen, approximate=True)
                    results = await pipe.execute(raise_on_error=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("queueing %d push jobs failed; those pushes are lost", len(batch))
                continue
            if not self._group_ready:
                first, results = results[0], results[1:]
                if isinstance(first, Exception) and "BUSYGROUP" not in str(first):
                    logger.error("creating the push consumer group failed: %s", first)
                self._group_ready = True
            failed = sum(isinstance(result, Exception) for result in results)
            self.appended += len(results) - failed
            if failed:
                logger.error("queueing %d push jobs failed; those pushes are lost", failed)

    async def flushed(self) -> None:
        """Wait until every job added so far is in Redis (tests, shutdown)."""
        while self._flushing is not None and not self._flushing.done():
            await self._flushing

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.flushed()
        await self._redis.aclose()


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
        return StreamFeed(
            redis_url=chat_settings.redis_url,
            prefix=chat_settings.redis_prefix,
            maxlen=push_settings().stream_maxlen,
        )
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


def on_publish(topic: str, event: HubEvent) -> None:
    """The fan-out listener: one job per committed envelope, when push is enabled."""
    if event.kind != "message" or not push_settings().enabled:
        return
    feed_for_running_loop().add(
        PushJob(room_id=event.room, seq=event.seq, sender_device_id=event.device)
    )
