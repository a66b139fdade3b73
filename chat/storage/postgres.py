"""PostgreSQL envelope store: async psycopg, one transaction per batch (group commit).

Why not the ORM here: every ORM call from async code hops to one worker thread, and a
send needs several round trips; at a few hundred messages per second that thread is the
bottleneck (docs/performance.md). Here, concurrent sends queue up while the previous
batch commits, then the whole queue is written in one transaction with four statements:

1. lock the senders' membership rows (``FOR SHARE``: a concurrent removal waits),
2. look up earlier copies of the ``(device, client id)`` pairs (idempotent retries),
3. lock the rooms in id order (no deadlock between processes) and advance ``last_seq``,
4. insert the envelopes with ``ON CONFLICT DO NOTHING`` on the idempotency key.

If step 4 inserts fewer rows than planned, another process stored one of the pairs in
the meantime: the transaction is rolled back and the batch planned again. So sequence
numbers stay dense and nothing is stored twice. Table names come from the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
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
_ADVANCE_ROOMS = f"""
    UPDATE {_ROOM} AS r SET last_seq = r.last_seq + w.n
    FROM unnest(%s::bigint[], %s::bigint[]) AS w(id, n)
    WHERE r.id = w.id
    RETURNING r.id, r.last_seq
"""  # noqa: S608
_INSERT = f"""
    INSERT INTO {_ENVELOPE}
        (room_id, seq, sender_device_id, sender_practitioner_id, client_id, body, size,
         created_at_ms)
    SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[],
                         %s::varchar[], %s::bytea[], %s::integer[], %s::bigint[])
    ON CONFLICT (sender_device_id, client_id) DO NOTHING
    RETURNING sender_device_id
"""  # noqa: S608
_FETCH = f"""
    SELECT seq, sender_device_id, sender_practitioner_id, client_id, body, created_at_ms
    FROM {_ENVELOPE}
    WHERE room_id = %s AND seq > %s AND seq <= %s
    ORDER BY seq
    LIMIT %s
"""  # noqa: S608

_MAX_REPLANS = 5


class _ReplanError(Exception):
    """Another transaction stored one of this batch's idempotency keys first."""


@dataclass(slots=True)
class _Pending:
    request: AppendRequest
    future: asyncio.Future[StoredEnvelope] = field(repr=False)


class PostgresMessageStore:
    """Group-committing envelope store. Create it inside the event loop that uses it."""

    def __init__(
        self, *, conninfo: dict[str, Any], pool_size: int, batch_max: int, clock: Clock
    ) -> None:
        self._clock = clock
        self._batch_max = batch_max
        self._pool = AsyncConnectionPool(
            kwargs=conninfo, min_size=1, max_size=max(2, pool_size), open=False
        )
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._opened = False
        self._open_lock = asyncio.Lock()

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                await self._pool.open(wait=True)
                self._writer = asyncio.create_task(self._write_forever(), name="relais-writer")
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
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(RelaisError(ErrorCode.SERVER_BUSY))
        self._pending.clear()
        if self._opened:
            await self._pool.close()
            self._opened = False

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._batch_max]
                del self._pending[: self._batch_max]
                await self._write_batch(batch)

    async def _write_batch(self, batch: list[_Pending]) -> None:
        live = [pending for pending in batch if not pending.future.done()]
        for _attempt in range(_MAX_REPLANS):
            try:
                async with self._pool.connection() as connection:
                    results = await self._transaction(connection, [p.request for p in live])
            except _ReplanError:
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
        async with connection.transaction():
            members = await _fetch_all(
                connection,
                _SELECT_MEMBERS,
                ([r.room_id for r in requests], [r.practitioner_id for r in requests]),
            )
            member_pairs = {(room_id, practitioner_id) for room_id, practitioner_id in members}
            existing_rows = await _fetch_all(
                connection,
                _SELECT_EXISTING,
                ([r.device_id for r in requests], [r.client_id for r in requests]),
            )
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
                for row in existing_rows
            }

            plan = _plan(requests, member_pairs, existing)
            if plan.new:
                counts: dict[int, int] = defaultdict(int)
                for request in plan.new:
                    counts[request.room_id] += 1
                room_ids = sorted(counts)
                await connection.execute(_LOCK_ROOMS, (room_ids,))
                advanced = await _fetch_all(
                    connection, _ADVANCE_ROOMS, (room_ids, [counts[r] for r in room_ids])
                )
                next_seq = {room_id: last - counts[room_id] + 1 for room_id, last in advanced}
                stored: dict[tuple[int, str], StoredEnvelope] = {}
                for request in plan.new:
                    seq = next_seq[request.room_id]
                    next_seq[request.room_id] = seq + 1
                    stored[(request.device_id, request.client_id)] = StoredEnvelope(
                        room_id=request.room_id,
                        seq=seq,
                        device_id=request.device_id,
                        practitioner_id=request.practitioner_id,
                        client_id=request.client_id,
                        body=request.body,
                        created_at_ms=now_ms,
                    )
                rows = list(stored.values())
                inserted = await _fetch_all(
                    connection,
                    _INSERT,
                    (
                        [e.room_id for e in rows],
                        [e.seq for e in rows],
                        [e.device_id for e in rows],
                        [e.practitioner_id for e in rows],
                        [e.client_id for e in rows],
                        [e.body for e in rows],
                        [len(e.body) for e in rows],
                        [now_ms] * len(rows),
                    ),
                )
                if len(inserted) != len(rows):
                    raise _ReplanError
                existing.update(stored)
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


async def _fetch_all(
    connection: AsyncConnection[Any], query: str, params: tuple[Any, ...]
) -> list[tuple[Any, ...]]:
    cursor = await connection.execute(query, params)
    return await cursor.fetchall()


def _fail(batch: list[_Pending], error: RelaisError) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(error)
