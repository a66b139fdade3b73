"""Which devices have a live connection right now, across every server process.

Presence is read from the fan-out's own subscriptions instead of being kept as extra
state. Every authenticated connection subscribes its hub to the topic of its device
(``chat.connection``), and a hub with Redis holds one Redis subscription per topic that
has a local subscriber. So:

* in one process (the embedded default, no Redis), a device is connected when the
  process's hub has a local subscriber on its device topic;
* with Redis, a device is connected when some server process is subscribed to its
  device channel: ``PUBSUB NUMSUB`` answers for any number of devices in one command.

Nothing is written when a device connects or leaves, nothing has to expire: a server
process that dies loses its Redis connection and with it its subscriptions, at once.
Why this matters for Web Push, and its limits, are in docs/push.md.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from chat.fanout import FanoutHub, device_topic


class Presence(Protocol):
    async def connected(self, device_ids: Collection[int]) -> set[int]:
        """The subset of ``device_ids`` that have at least one live connection."""
        ...


class HubPresence:
    """Presence in a single process: the hub's local subscribers. Exact, no I/O."""

    def __init__(self, hub: FanoutHub) -> None:
        self._hub = hub

    async def connected(self, device_ids: Collection[int]) -> set[int]:
        return {
            device_id
            for device_id in device_ids
            if self._hub.local_subscriber_count(device_topic(device_id)) > 0
        }


class RedisPresence:
    """Presence across processes: who is subscribed to each device's Redis channel.

    ``redis`` is a ``redis.asyncio.Redis`` client of the Redis the hubs use, and
    ``channel_prefix`` the hubs' prefix (``RELAIS_REDIS_PREFIX``). With Redis Cluster and
    classic pub/sub, ``NUMSUB`` counts one node's subscribers only: the hubs would then
    have to use sharded pub/sub and this class ``PUBSUB SHARDNUMSUB``.
    """

    def __init__(self, *, redis: Any, channel_prefix: str) -> None:
        self._redis = redis
        self._prefix = channel_prefix + ":"

    async def connected(self, device_ids: Collection[int]) -> set[int]:
        if not device_ids:
            return set()
        by_channel = {self._prefix + device_topic(device_id): device_id for device_id in device_ids}
        counts = await self._redis.pubsub_numsub(*by_channel)
        connected: set[int] = set()
        for channel, count in counts:
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            if int(count) > 0 and name in by_channel:
                connected.add(by_channel[name])
        return connected
