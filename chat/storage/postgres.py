"""PostgreSQL envelope store: async psycopg, one statement per batch (group commit).

Why not the ORM here: every ORM call from async code hops to one worker thread, and a
send needs several round trips; at a few hundred messages per second that thread is the
bottleneck (docs/performance.md). Here, concurrent sends queue up while the previous
batch commits, then the whole queue is stored by one call of the database function
``relais_append_envelopes`` (migration ``chat/0004``), in autocommit mode: one round
trip, one commit. Inside it:

1. the batch's rooms are locked in id order (writers in several processes cannot
   deadlock);
2. one statement keeps the envelopes whose sender is a member of the room and whose
   ``(device, client id)`` pair is not stored yet, numbers them per room from
   ``last_seq``, advances ``last_seq`` and inserts them.

Membership is read by a statement that starts once the room's lock is held, and every
membership change takes the same lock (``chat.services.rooms``), so an envelope is
never accepted from someone removed before it was stored, without locking membership
rows. An envelope of the batch that was not inserted is looked up afterwards (a rare
path): found, it is a retry and gets the original's ack; not found, its sender is not a
member. If another process is storing the same pair at the same moment, the insert
waits for it and then violates the idempotency constraint: the statement fails as a
whole and the batch is tried again, now finding that copy. So sequence numbers stay
dense and nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from chat.clock import Clock
from chat.errors import ErrorCode, RelaisError
from chat.models import Envelope
from chat.storage.base import AppendRequest, StoredEnvelope
from observability import metrics

logger = logging.getLogger(__name__)

_ENVELOPE = Envelope._meta.db_table

# %b: parameters travel in PostgreSQL's binary format, six times cheaper to prepare than
# text for arrays of bodies (measured; docs/performance.md).
_APPEND = "SELECT * FROM relais_append_envelopes(%b, %b, %b, %b, %b, %b)"
_SELECT_EXISTING = f"""
    SELECT sender_device_id, client_id, room_id, seq, sender_practitioner_id, body, created_at_ms
    FROM {_ENVELOPE}
    WHERE (sender_device_id, client_id) IN (SELECT * FROM unnest(%s::bigint[], %s::varchar[]))
"""  # noqa: S608
_FETCH = f"""
    SELECT seq, sender_device_id, sender_practitioner_id, client_id, body, created_at_ms
    FROM {_ENVELOPE}
    WHERE room_id = %s AND seq > %s AND seq <= %s
    ORDER BY seq
    LIMIT %s
"""  # noqa: S608

_MAX_REPLANS = 5


@dataclass(slots=True)
class _Pending:
    request: AppendRequest
    future: asyncio.Future[StoredEnvelope] = field(repr=False)
    deadline: float


class PostgresMessageStore:
    """Group-committing envelope store. Create it inside the event loop that uses it."""

    def __init__(
        self,
        *,
        conninfo: dict[str, Any],
        pool_size: int,
        batch_max: int,
        writers: int,
        timeout_seconds: float,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._timeout = timeout_seconds
        self._batch_max = batch_max
        self._writer_count = max(1, writers)
        self._pool = AsyncConnectionPool(
            # Autocommit: every statement commits on its own, one round trip each.
            kwargs={**conninfo, "autocommit": True},
            min_size=1,
            max_size=max(self._writer_count + 1, pool_size),
            open=False,
        )
        self._pending: list[_Pending] = []
        # Every request not answered yet, oldest first: the watchdog's worklist.
        self._unanswered: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._writers: list[asyncio.Task[None]] = []
        self._watchdog: asyncio.Task[None] | None = None
        self._opened = False
        self._open_lock = asyncio.Lock()

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                await self._pool.open(wait=True)
                self._writers = [
                    asyncio.create_task(self._write_forever(), name=f"relais-writer-{number}")
                    for number in range(self._writer_count)
                ]
                self._watchdog = asyncio.create_task(self._watch_forever(), name="relais-watchdog")
                self._opened = True

    async def append(self, request: AppendRequest) -> StoredEnvelope:
        """Store ``request`` with the next batch; SERVER_BUSY if not committed in time.

        The time limit is enforced by one watchdog for all requests, not by a timer per
        request: on the hot path a timer costs more than the rest of ``append``.
        """
        await self._ensure_open()
        future: asyncio.Future[StoredEnvelope] = asyncio.get_running_loop().create_future()
        pending = _Pending(request, future, self._clock.monotonic() + self._timeout)
        self._pending.append(pending)
        self._unanswered.append(pending)
        self._wakeup.set()
        return await future

    def expire_overdue(self) -> int:
        """Answer SERVER_BUSY to every request past its deadline; return how many.

        A request answered this way may still be committed by its batch: the client
        retries with the same id and gets the original ack then (docs/protocol.md §4).
        """
        now = self._clock.monotonic()
        expired = 0
        unanswered = self._unanswered
        while unanswered and (unanswered[0].future.done() or unanswered[0].deadline <= now):
            pending = unanswered.popleft()
            if not pending.future.done():
                pending.future.set_exception(RelaisError(ErrorCode.SERVER_BUSY))
                expired += 1
        if expired:
            logger.warning("%d envelopes were not stored in time", expired)
        return expired

    async def _watch_forever(self) -> None:
        period = max(0.05, min(1.0, self._timeout / 4))
        while True:
            await asyncio.sleep(period)  # the watchdog's own period: a timer, not a test wait
            self.expire_overdue()

    async def fetch_range(
        self, *, room_id: int, after_seq: int, up_to_seq: int, limit: int
    ) -> list[StoredEnvelope]:
        await self._ensure_open()
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                _FETCH, (room_id, after_seq, up_to_seq, limit), binary=True
            )
            rows = await cursor.fetchall()
        return [
            StoredEnvelope(
                room_id=room_id,
                seq=seq,
                device_id=device_id,
                practitioner_id=practitioner_id,
                client_id=client_id,
                body=bytes(body),
                created_at_ms=created_at_ms,
            )
            for seq, device_id, practitioner_id, client_id, body, created_at_ms in rows
        ]

    async def close(self) -> None:
        for task in [*self._writers, *([self._watchdog] if self._watchdog else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._writers = []
        self._watchdog = None
        # Queued or in a batch that will not finish: the senders retry with the same id.
        for pending in self._unanswered:
            if not pending.future.done():
                pending.future.set_exception(RelaisError(ErrorCode.SERVER_BUSY))
        self._pending.clear()
        self._unanswered.clear()
        if self._opened:
            await self._pool.close()
            self._opened = False

    async def _write_forever(self) -> None:
        """One of the writers: take what is pending, store it, repeat.

        With two writers, one batch's statements travel while the other's commit waits
        for the disk; envelopes of one room still get their numbers in commit order,
        because the second batch waits for the room's row lock.
        """
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = self._pending[: self._batch_max]
            del self._pending[: self._batch_max]
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[_Pending]) -> None:
        live = [pending for pending in batch if not pending.future.done()]
        if not live:
            return  # all answered already (by the watchdog)
        started = self._clock.monotonic()
        metrics.SENDS.inc(len(live))
        metrics.STORE_BATCH_SIZE.observe(len(live))
        for _attempt in range(_MAX_REPLANS):
            try:
                async with self._pool.connection() as connection:
                    results = await self._append_batch(connection, [p.request for p in live])
            except UniqueViolation:
                # Another process stored one of the pairs first: plan again, finding it.
                continue
            except Exception:
                logger.exception("storing a batch of %d envelopes failed", len(live))
                metrics.STORE_FAILURES.inc()
                _fail(live, RelaisError(ErrorCode.INTERNAL))
                return
            metrics.STORE_BATCH_SECONDS.observe(self._clock.monotonic() - started)
            metrics.ACKS.inc(sum(1 for result in results if not isinstance(result, RelaisError)))
            for pending, result in zip(live, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, RelaisError):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            return
        logger.error("a batch kept conflicting with concurrent writers; giving up")
        metrics.STORE_FAILURES.inc()
        _fail(live, RelaisError(ErrorCode.SERVER_BUSY))

    async def _append_batch(
        self, connection: AsyncConnection[Any], requests: list[AppendRequest]
    ) -> list[StoredEnvelope | RelaisError]:
        now_ms = self._clock.now_ms()
        # The first request of each (device, client id) pair; later ones are retries.
        firsts: dict[tuple[int, str], int] = {}
        for index, request in enumerate(requests):
            firsts.setdefault((request.device_id, request.client_id), index)
        rows = [requests[index] for index in firsts.values()]
        inserted = await connection.execute(
            _APPEND,
            (
                [r.room_id for r in rows],
                [r.device_id for r in rows],
                [r.practitioner_id for r in rows],
                [r.client_id for r in rows],
                [r.body for r in rows],
                now_ms,
            ),
        )
        stored: dict[tuple[int, str], StoredEnvelope] = {}
        by_key = {(r.device_id, r.client_id): r for r in rows}
        for device_id, client_id, seq in await inserted.fetchall():
            request = by_key[(device_id, client_id)]
            stored[(device_id, client_id)] = StoredEnvelope(
                room_id=request.room_id,
                seq=seq,
                device_id=device_id,
                practitioner_id=request.practitioner_id,
                client_id=client_id,
                body=request.body,
                created_at_ms=now_ms,
            )
        missing = [key for key in by_key if key not in stored]
        if missing:
            stored.update(await _stored_before(connection, missing))
        results: list[StoredEnvelope | RelaisError] = []
        for index, request in enumerate(requests):
            key = (request.device_id, request.client_id)
            envelope = stored.get(key)
            if envelope is None:
                results.append(RelaisError(ErrorCode.NOT_MEMBER))
            elif firsts[key] != index:
                # A retry in the same batch: answer with the original (only its sender
                # can know the pair, since it includes the sending device).
                results.append(_as_duplicate(envelope))
            else:
                results.append(envelope)
        return results


async def _stored_before(
    connection: AsyncConnection[Any], keys: list[tuple[int, str]]
) -> dict[tuple[int, str], StoredEnvelope]:
    """Envelopes already stored under these pairs (retries of earlier sends)."""
    cursor = await connection.execute(
        _SELECT_EXISTING, ([device for device, _ in keys], [client_id for _, client_id in keys])
    )
    return {
        (row[0], row[1]): StoredEnvelope(
            room_id=row[2],
            seq=row[3],
            device_id=row[0],
            practitioner_id=row[4],
            client_id=row[1],
            body=bytes(row[5]),
            created_at_ms=row[6],
            duplicate=True,
        )
        for row in await cursor.fetchall()
    }


def _as_duplicate(envelope: StoredEnvelope) -> StoredEnvelope:
    if envelope.duplicate:
        return envelope
    return StoredEnvelope(
        room_id=envelope.room_id,
        seq=envelope.seq,
        device_id=envelope.device_id,
        practitioner_id=envelope.practitioner_id,
        client_id=envelope.client_id,
        body=envelope.body,
        created_at_ms=envelope.created_at_ms,
        duplicate=True,
    )


def _fail(batch: list[_Pending], error: RelaisError) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(error)
