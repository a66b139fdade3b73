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

logger = logging.getLogger(__name__)

TTL_SECONDS: Final = 30
REFRESH_SECONDS: Final = 10
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
        self._refresher: asyncio.Task[None] | None = None

    async def device_connected(self, device_id: int) -> None:
        self._local[device_id] += 1
        if not self._redis_url:
            return
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(
                self._refresh_forever(), name="relais-presence-refresh"
            )
        try:
            async with asyncio.timeout(_ANNOUNCE_TIMEOUT_SECONDS):
                await self._announce([device_id])
        except Exception:
            logger.warning("recording the presence of device %s failed", device_id, exc_info=True)

    async def device_disconnected(self, device_id: int) -> None:
        self._local[device_id] -= 1
        if self._local[device_id] > 0:
            return
        del self._local[device_id]
        if not self._redis_url:
            return
        try:
            async with asyncio.timeout(_ANNOUNCE_TIMEOUT_SECONDS):
                await self._client().zrem(presence_key(self._prefix, device_id), self.origin)
        except Exception:
            logger.warning("clearing the presence of device %s failed", device_id, exc_info=True)
        if not self._local:
            await self.close()

    async def connected(self, device_ids: Collection[int]) -> set[int]:
        """Devices connected to this process (the whole answer without Redis)."""
        return {device_id for device_id in device_ids if self._local[device_id] > 0}

    async def close(self) -> None:
        """Stop refreshing and drop the Redis connection (reopened when needed)."""
        refresher, self._refresher = self._refresher, None
        if refresher is not None and refresher is not asyncio.current_task():
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as redis_asyncio

            self._redis = redis_asyncio.Redis.from_url(self._redis_url)
        return self._redis

    async def _announce(self, device_ids: list[int]) -> None:
        if not device_ids:
            return
        expires_at = self._clock.now_ms() + self._ttl_ms
        async with self._client().pipeline(transaction=False) as pipe:
            for device_id in device_ids:
                key = presence_key(self._prefix, device_id)
                pipe.zadd(key, {self.origin: expires_at})
                pipe.zremrangebyscore(key, "-inf", self._clock.now_ms())
                pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()

    async def _refresh_forever(self) -> None:
        while self._local:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self._announce(list(self._local))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("refreshing presence failed", exc_info=True)


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
