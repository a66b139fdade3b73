"""The push worker: reads push jobs, hands them to the dispatcher, sends what is due.

Production runs it as its own process (``manage.py push_worker``) reading the Redis
stream the server processes append to (``StreamSource``); the embedded default (no
Redis) runs it inside the server process on an in-process queue (``QueueSource``).
Either way the WebSocket send path never waits for it. See docs/push.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from channels.db import database_sync_to_async
from redis.exceptions import ResponseError

from chat.clock import Clock
from push.dispatcher import Dispatcher
from push.jobs import STREAM_GROUP, PushJob
from push.recipients import do_prune_revoked_subscriptions

logger = logging.getLogger(__name__)

Entry = tuple[str, PushJob | None]  # None: a malformed entry, acknowledged and dropped


class JobSource(Protocol):
    async def read(self) -> list[Entry]:
        """Wait (a bounded time) for jobs; may return an empty list."""
        ...

    async def ack(self, entry_ids: list[str]) -> None:
        """The jobs are in the dispatcher: never hand them out again."""
        ...

    def retry_unacked(self) -> None:
        """Handing the last jobs to the dispatcher failed: read them again."""
        ...


class QueueSource:
    """Jobs from an in-process queue (embedded default). Nothing survives a restart."""

    def __init__(self, queue: asyncio.Queue[PushJob], *, batch: int = 200) -> None:
        self._queue = queue
        self._batch = batch
        self._unacked: list[Entry] = []

    async def read(self) -> list[Entry]:
        if self._unacked:
            return self._unacked
        jobs = [await self._queue.get()]
        while len(jobs) < self._batch and not self._queue.empty():
            jobs.append(self._queue.get_nowait())
        self._unacked = [("", job) for job in jobs]
        return self._unacked

    async def ack(self, entry_ids: list[str]) -> None:
        self._unacked = []

    def retry_unacked(self) -> None:
        """The unacked jobs are returned again by the next ``read``."""


class StreamSource:
    """Jobs from the Redis stream, through a consumer group.

    An entry is acknowledged once the dispatcher holds its deliveries; until then it
    stays pending in Redis. After a restart a worker first reads its own pending
    entries, and any worker claims entries left pending by a dead one for longer than
    ``claim_idle_ms``. Several workers share the stream (each entry goes to one).
    """

    def __init__(
        self,
        *,
        redis: Any,
        key: str,
        consumer: str,
        clock: Clock,
        batch: int = 200,
        block_ms: int = 2000,
        claim_idle_ms: int = 60_000,
    ) -> None:
        self._redis = redis
        self._key = key
        self._consumer = consumer
        self._clock = clock
        self._batch = batch
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._cursor = "0"  # own pending entries first, then new ones (">")
        self._next_claim = 0.0

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._key, STREAM_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self) -> list[Entry]:
        now = self._clock.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self._claim_idle_ms / 2000
            claimed = await self._claim_abandoned()
            if claimed:
                return claimed
        if self._cursor == "0":
            own = await self._read_group("0", block_ms=None)
            if own:
                return own
            self._cursor = ">"
        return await self._read_group(">", block_ms=self._block_ms)

    async def _read_group(self, cursor: str, *, block_ms: int | None) -> list[Entry]:
        try:
            answer = await self._redis.xreadgroup(
                STREAM_GROUP, self._consumer, {self._key: cursor}, count=self._batch, block=block_ms
            )
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.ensure_group()
            return []
        return self._decode(answer[0][1] if answer else [])

    async def _claim_abandoned(self) -> list[Entry]:
        try:
            answer = await self._redis.xautoclaim(
                self._key,
                STREAM_GROUP,
                self._consumer,
                min_idle_time=self._claim_idle_ms,
                start_id="0-0",
                count=self._batch,
            )
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.ensure_group()
            return []
        return self._decode(answer[1])

    def _decode(self, raw: list[tuple[bytes, dict[bytes, bytes] | None]]) -> list[Entry]:
        entries: list[Entry] = []
        for entry_id, fields in raw:
            name = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            try:
                entries.append((name, PushJob.from_entry(name, fields or {})))
            except (KeyError, ValueError):
                logger.warning("dropping a malformed push job %s", name)
                entries.append((name, None))
        return entries

    async def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            await self._redis.xack(self._key, STREAM_GROUP, *entry_ids)

    def retry_unacked(self) -> None:
        self._cursor = "0"


class PushWorker:
    """Runs until cancelled: one task feeds the dispatcher, one sends what is due."""

    def __init__(
        self,
        *,
        source: JobSource,
        dispatcher: Dispatcher,
        housekeeping_seconds: float = 60,
    ) -> None:
        self._source = source
        self._dispatcher = dispatcher
        self._housekeeping_seconds = housekeeping_seconds
        self._wakeup = asyncio.Event()
        dispatcher.on_change = self._wakeup.set

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._consume_forever(), name="relais-push-consume"),
            asyncio.create_task(self._deliver_forever(), name="relais-push-deliver"),
            asyncio.create_task(self._housekeeping_forever(), name="relais-push-housekeeping"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._dispatcher.close()

    async def _consume_forever(self) -> None:
        failures = 0
        while True:
            try:
                entries = await self._source.read()
                if not entries:
                    continue
                jobs = [job for _, job in entries if job is not None]
                if jobs:
                    await self._dispatcher.add_jobs(jobs)
                await self._source.ack([entry_id for entry_id, _ in entries])
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                delay = min(30, 2**failures)
                logger.exception("reading push jobs failed; again in %s s", delay)
                self._source.retry_unacked()
                await asyncio.sleep(delay)

    async def _deliver_forever(self) -> None:
        while True:
            self._wakeup.clear()
            await self._dispatcher.send_due()
            delay = self._dispatcher.seconds_until_next_due()
            if delay == 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)

    async def _housekeeping_forever(self) -> None:
        while True:
            await asyncio.sleep(self._housekeeping_seconds)
            try:
                pruned = await database_sync_to_async(do_prune_revoked_subscriptions)()
            except Exception:
                logger.exception("pruning the subscriptions of revoked devices failed")
                pruned = 0
            stats = self._dispatcher.stats
            logger.info(
                "push: sent=%d gone=%d retried=%d rejected=%d gave_up=%d expired=%d "
                "skipped_connected=%d pending=%d in_flight=%d revoked_pruned=%d",
                stats.sent,
                stats.gone,
                stats.retried,
                stats.rejected,
                stats.gave_up,
                stats.expired,
                stats.skipped_connected,
                self._dispatcher.pending_count,
                self._dispatcher.in_flight_count,
                pruned,
            )
