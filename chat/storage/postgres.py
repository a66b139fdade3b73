"""PostgreSQL envelope store: async psycopg, one transaction per batch (group commit).

Why not the ORM here: every ORM call from async code hops to one worker thread, and a
send needs several round trips; at a few hundred messages per second that thread is the
bottleneck (docs/performance.md). Here, concurrent sends queue up while the previous
batch commits, then the whole queue is written in one transaction, in two round trips
(psycopg's pipeline mode sends the statements of a round trip together):

1. lock the senders' membership rows (``FOR SHARE``: a concurrent removal waits) and
   look up earlier copies of the ``(device, client id)`` pairs (idempotent retries);
2. lock the rooms in id order (no deadlock between processes), advance each room's
   ``last_seq`` and insert the envelopes numbered from it (one statement), commit.

If another process stored one of the batch's ``(device, client id)`` pairs in the
meantime, the insert violates the idempotency constraint: the transaction is rolled
back and the batch planned again, now finding that copy. So sequence numbers stay dense
and nothing is stored twice. Table names come from the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from chat.clock import Clock
from chat.errors import ErrorCode, RelaisError
from chat.models import Envelope, Membership, Room
from chat.storage.base import AppendRequest, StoredEnvelope

logger = logging.getLogger(__name__)

_ENVELOPE = Envelope._meta.db_table
_MEMBERSHIP = Membership._meta.db_table
_ROOM = Room._meta.db_table

_SELECT_MEMBERS = f"""
    SELECT m.room_id, m.practitioner_id FROM {_MEMBERSHIP} m
    WHERE (m.room_id, m.practitioner_id) IN (
        SELECT * FROM unnest(%s::bigint[], %s::varchar[]))
    FOR SHARE OF m
"""  # noqa: S608 - table names come from the models, values are parameters
_SELECT_EXISTING = f"""
    SELECT sender_device_id, client_id, room_id, seq, sender_practitioner_id, body, created_at_ms
    FROM {_ENVELOPE}
    WHERE (sender_device_id, client_id) IN (SELECT * FROM unnest(%s::bigint[], %s::varchar[]))
"""  # noqa: S608
_LOCK_ROOMS = f"SELECT id FROM {_ROOM} WHERE id = ANY(%s) ORDER BY id FOR UPDATE"  # noqa: S608
_ADVANCE_AND_INSERT = f"""
    WITH advanced AS (
        UPDATE {_ROOM} AS r SET last_seq = r.last_seq + w.n
        FROM unnest(%s::bigint[], %s::bigint[]) AS w(id, n)
        WHERE r.id = w.id
        RETURNING r.id, r.last_seq - w.n AS base
    )
    INSERT INTO {_ENVELOPE}
        (room_id, seq, sender_device_id, sender_practitioner_id, client_id, body, size,
         created_at_ms)
    SELECT e.room_id, a.base + e.ordinal, e.device_id, e.practitioner_id, e.client_id,
           e.body, octet_length(e.body), %s
    FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[], %s::varchar[],
                %s::bytea[]) AS e(room_id, ordinal, device_id, practitioner_id, client_id, body)
    JOIN advanced AS a ON a.id = e.room_id
    RETURNING sender_device_id, client_id, seq
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


class PostgresMessageStore:
    """Group-committing envelope store. Create it inside the event loop that uses it."""

    def __init__(
        self,
        *,
        conninfo: dict[str, Any],
        pool_size: int,
        batch_max: int,
        writers: int,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._batch_max = batch_max
        self._writer_count = max(1, writers)
        self._pool = AsyncConnectionPool(
            kwargs=conninfo,
            min_size=1,
            max_size=max(self._writer_count + 1, pool_size),
            open=False,
        )
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._writers: list[asyncio.Task[None]] = []
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
                self._opened = True

    async def append(self, request: AppendRequest) -> StoredEnvelope:
        await self._ensure_open()
        future: asyncio.Future[StoredEnvelope] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(request, future))
        self._wakeup.set()
        return await future

    async def fetch_range(
        self, *, room_id: int, after_seq: int, up_to_seq: int, limit: int
    ) -> list[StoredEnvelope]:
        await self._ensure_open()
        async with self._pool.connection() as connection:
            cursor = await connection.execute(_FETCH, (room_id, after_seq, up_to_seq, limit))
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
        for writer in self._writers:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        self._writers = []
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(RelaisError(ErrorCode.SERVER_BUSY))
        self._pending.clear()
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
        for _attempt in range(_MAX_REPLANS):
            try:
                async with self._pool.connection() as connection:
                    results = await self._transaction(connection, [p.request for p in live])
            except UniqueViolation:
                # Another process stored one of the pairs first: plan again, finding it.
                continue
            except Exception:
                logger.exception("storing a batch of %d envelopes failed", len(live))
                _fail(live, RelaisError(ErrorCode.INTERNAL))
                return
            for pending, result in zip(live, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, RelaisError):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            return
        logger.error("a batch kept conflicting with concurrent writers; giving up")
        _fail(live, RelaisError(ErrorCode.SERVER_BUSY))

    async def _transaction(
        self, connection: AsyncConnection[Any], requests: list[AppendRequest]
    ) -> list[StoredEnvelope | RelaisError]:
        now_ms = self._clock.now_ms()
        inserted: AsyncCursor[Any] | None = None
        async with connection.pipeline() as pipeline, connection.transaction():
            members_query = await connection.execute(
                _SELECT_MEMBERS,
                ([r.room_id for r in requests], [r.practitioner_id for r in requests]),
            )
            existing_query = await connection.execute(
                _SELECT_EXISTING, ([r.device_id for r in requests], [r.client_id for r in requests])
            )
            await pipeline.sync()  # round trip 1
            member_pairs = {(room, who) for room, who in await members_query.fetchall()}
            existing = {
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
                for row in await existing_query.fetchall()
            }
            plan = _plan(requests, member_pairs, existing)
            if plan.new:
                ordinals: dict[int, int] = defaultdict(int)
                numbered = []
                for request in plan.new:
                    ordinals[request.room_id] += 1
                    numbered.append(ordinals[request.room_id])
                room_ids = sorted(ordinals)
                await connection.execute(_LOCK_ROOMS, (room_ids,))
                inserted = await connection.execute(
                    _ADVANCE_AND_INSERT,
                    (
                        room_ids,
                        [ordinals[room_id] for room_id in room_ids],
                        now_ms,
                        [r.room_id for r in plan.new],
                        numbered,
                        [r.device_id for r in plan.new],
                        [r.practitioner_id for r in plan.new],
                        [r.client_id for r in plan.new],
                        [r.body for r in plan.new],
                    ),
                )
        # Round trip 2 (lock, insert, commit) happened as the blocks closed.
        if inserted is not None:
            seqs = {
                (device, client_id): seq for device, client_id, seq in await inserted.fetchall()
            }
            for request in plan.new:
                key = (request.device_id, request.client_id)
                existing[key] = StoredEnvelope(
                    room_id=request.room_id,
                    seq=seqs[key],
                    device_id=request.device_id,
                    practitioner_id=request.practitioner_id,
                    client_id=request.client_id,
                    body=request.body,
                    created_at_ms=now_ms,
                )
        return _resolve(requests, member_pairs, existing, plan)


@dataclass(slots=True)
class _Plan:
    new: list[AppendRequest]
    first_of_key: set[int]


def _plan(
    requests: list[AppendRequest],
    member_pairs: set[tuple[int, str]],
    existing: dict[tuple[int, str], StoredEnvelope],
) -> _Plan:
    """Pick the requests to insert: members only, not stored before, first of each key."""
    new: list[AppendRequest] = []
    first_of_key: set[int] = set()
    seen: set[tuple[int, str]] = set()
    for index, request in enumerate(requests):
        key = (request.device_id, request.client_id)
        if (request.room_id, request.practitioner_id) not in member_pairs:
            continue
        if key in existing or key in seen:
            continue
        seen.add(key)
        first_of_key.add(index)
        new.append(request)
    return _Plan(new=new, first_of_key=first_of_key)


def _resolve(
    requests: list[AppendRequest],
    member_pairs: set[tuple[int, str]],
    stored: dict[tuple[int, str], StoredEnvelope],
    plan: _Plan,
) -> list[StoredEnvelope | RelaisError]:
    results: list[StoredEnvelope | RelaisError] = []
    for index, request in enumerate(requests):
        envelope = stored.get((request.device_id, request.client_id))
        if envelope is not None and index not in plan.first_of_key:
            # A retry: answer with the original, whoever asks (only its sender can
            # know the key, since the key includes the sending device).
            results.append(_as_duplicate(envelope))
        elif envelope is not None:
            results.append(envelope)
        elif (request.room_id, request.practitioner_id) not in member_pairs:
            results.append(RelaisError(ErrorCode.NOT_MEMBER))
        else:
            results.append(RelaisError(ErrorCode.INTERNAL))
    return results


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
