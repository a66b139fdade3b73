"""Which devices have a live connection right now, across every server process.

Web Push wakes only devices that are not connected (docs/push.md). Each server process
keeps a ``PresenceTracker`` (one per event loop): ``chat.connection`` tells it when an
authenticated connection starts and ends, and it counts connections per device.

* Without Redis (the embedded default, one process) that count is the answer.
* With Redis, the tracker mirrors its devices in Redis: one sorted set per device,
  holding the ids of the processes where the device is connected, each scored with an
  expiry time. The process refreshes its entries every ``REFRESH_SECONDS`` and removes
  a device's entry when its last connection there ends; a process that dies stops
  refreshing, and its entries count for nothing after ``TTL_SECONDS``. The push worker
  asks with ``RedisPresence``: one pipelined round trip for any number of devices.

Presence is recorded before the ``ready`` frame is sent, so a device that has ``ready``
is certain not to be pushed. Redis trouble never fails a connection: presence is then
missing, and the device at worst gets a push it did not need.

Changes travel in batches: one task (the flusher) sends every pending announcement and
removal in one pipelined round trip, whatever the number of devices (200 devices closing
at once cost one round trip, not 200 connections to Redis). A removal that fails stays
pending and is tried again every ``RETRY_SECONDS`` until Redis takes it, so a device that
went away is never left "online" by a Redis hiccup; an entry this process cannot remove
at all (Redis away for longer) expires on its own after ``TTL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections import Counter
from collections.abc import Collection
from typing import Any, Final, Protocol

from chat.clock import Clock
from chat.outages import OutageLog

logger = logging.getLogger(__name__)

TTL_SECONDS: Final = 30
REFRESH_SECONDS: Final = 10
RETRY_SECONDS: Final = 0.5
_ANNOUNCE_TIMEOUT_SECONDS: Final = 2


def presence_key(prefix: str, device_id: int) -> str:
    """The Redis sorted set of the processes where a device is connected."""
    return f"{prefix}:presence:device.{device_id}"


class Presence(Protocol):
    async def connected(self, device_ids: Collection[int]) -> set[int]:
        """The subset of ``device_ids`` that have at least one live connection."""
        ...


class PresenceTracker:
    """This process's connected devices, mirrored in Redis when ``redis_url`` is set."""

    def __init__(
        self,
        *,
        redis_url: str,
        prefix: str,
        clock: Clock,
        ttl_seconds: float = TTL_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.origin = uuid.uuid4().hex
        self._redis_url = redis_url
        self._prefix = prefix
        self._clock = clock
        self._ttl_ms = int(ttl_seconds * 1000)
        self._refresh_seconds = refresh_seconds
        self._local: Counter[int] = Counter()
        self._redis: Any = None
        self._to_announce: set[int] = set()
        self._to_remove: set[int] = set()
        self._flushed = asyncio.Event()  # set after each round trip, then cleared
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._outage = OutageLog(what="Redis (presence)", logger=logger, clock=clock)

    async def device_connected(self, device_id: int) -> None:
        """Count the connection; with Redis, return once it is announced (2 s at most)."""
        self._local[device_id] += 1
        if not self._redis_url:
            return
        self._to_remove.discard(device_id)
        self._to_announce.add(device_id)
        self._start_flusher()
        await self._flushed_or_late(self._to_announce, device_id)

    async def device_disconnected(self, device_id: int) -> None:
        """Count the end of a connection; the device's last one here is removed from
        Redis (waits 2 s at most; a removal that fails is retried in the background)."""
        self._local[device_id] -= 1
        if self._local[device_id] > 0:
            return
        del self._local[device_id]
        if not self._redis_url:
            return
        self._to_announce.discard(device_id)
        self._to_remove.add(device_id)
        self._start_flusher()
        await self._flushed_or_late(self._to_remove, device_id)

    async def _flushed_or_late(self, pending: set[int], device_id: int) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_ANNOUNCE_TIMEOUT_SECONDS):
                while device_id in pending:
                    await self._flushed.wait()

    async def connected(self, device_ids: Collection[int]) -> set[int]:
        """Devices connected to this process (the whole answer without Redis)."""
        return {device_id for device_id in device_ids if self._local[device_id] > 0}

    @property
    def pending_removals(self) -> int:
        return len(self._to_remove)

    async def close(self) -> None:
        """Stop the flusher and drop the Redis connection (reopened when needed)."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher is not asyncio.current_task():
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _start_flusher(self) -> None:
        self._wakeup.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_forever(), name="relais-presence")

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as redis_asyncio

            self._redis = redis_asyncio.Redis.from_url(
                self._redis_url, socket_connect_timeout=_ANNOUNCE_TIMEOUT_SECONDS
            )
        return self._redis

    async def _flush_forever(self) -> None:
        """Send what changed, refresh what lives, retry what failed; stop when idle."""
        next_refresh = self._clock.monotonic() + self._refresh_seconds
        while self._local or self._to_remove or self._to_announce:
            refresh = self._clock.monotonic() >= next_refresh
            announce = set(self._local) if refresh else set(self._to_announce)
            remove = set(self._to_remove)
            failed = False
            if announce or remove:
                try:
                    async with asyncio.timeout(_ANNOUNCE_TIMEOUT_SECONDS):
                        await self._write(announce=announce, remove=remove)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    failed = True
                    self._outage.failed(error)
                else:
                    self._outage.recovered()
                    self._to_announce -= announce
                    self._to_remove -= remove
                    if refresh:
                        next_refresh = self._clock.monotonic() + self._refresh_seconds
            self._flushed.set()
            self._flushed.clear()
            self._wakeup.clear()
            if failed:
                await asyncio.sleep(RETRY_SECONDS)  # the retry period, not a test wait
            elif not (self._to_announce or self._to_remove):
                # Sleep until something changes or the next refresh is due.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_refresh - self._clock.monotonic())):
                        await self._wakeup.wait()
        client, self._redis = self._redis, None
        self._flusher = None
        if client is not None:
            await client.aclose()

    async def _write(self, *, announce: set[int], remove: set[int]) -> None:
        now = self._clock.now_ms()
        expires_at = now + self._ttl_ms
        async with self._client().pipeline(transaction=False) as pipe:
            for device_id in announce:
                key = presence_key(self._prefix, device_id)
                pipe.zadd(key, {self.origin: expires_at})
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.pexpire(key, self._ttl_ms)
            for device_id in remove:
                pipe.zrem(presence_key(self._prefix, device_id), self.origin)
            await pipe.execute()


class RedisPresence:
    """Presence across processes, read from Redis (the push worker's view).

    ``redis`` is a ``redis.asyncio.Redis`` client, ``prefix`` the deployment's
    ``RELAIS_REDIS_PREFIX``, ``clock`` a wall clock close to the servers' (NTP).
    """

    def __init__(self, *, redis: Any, prefix: str, clock: Clock) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock

    async def connected(self, device_ids: Collection[int]) -> set[int]:
        ordered = list(device_ids)
        if not ordered:
            return set()
        now = self._clock.now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            for device_id in ordered:
                pipe.zcount(presence_key(self._prefix, device_id), f"({now}", "+inf")
            counts = await pipe.execute()
        return {device_id for device_id, count in zip(ordered, counts, strict=True) if count}


_trackers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PresenceTracker] = (
    weakref.WeakKeyDictionary()
)


def presence_tracker(*, clock: Clock) -> PresenceTracker:
    """The running loop's tracker (one per server process), made on first use."""
    loop = asyncio.get_running_loop()
    tracker = _trackers.get(loop)
    if tracker is None:
        from chat.conf import relais_settings

        settings = relais_settings()
        tracker = PresenceTracker(
            redis_url=settings.redis_url, prefix=settings.redis_prefix, clock=clock
        )
        _trackers[loop] = tracker
    return tracker
