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

When PostgreSQL goes away (docs/architecture.md, "Faults"), the store notices it on the
first failed batch and stops waiting for it: every send is answered ``server_busy`` at
once (the client retries with the same id) instead of each one waiting out the pool's
timeout. A recovery task tries a fresh connection every ``PROBE_SECONDS``; when one
works, the store swaps in a new pool (the old one may be deep in its own reconnection
backoff) and sends are stored again within a second of the database coming back. A
batch that failed on a broken connection may have been committed anyway: once the
database answers, the store looks those envelopes up and hands the ones it finds to
``on_late_commit`` (the runtime publishes them), as it does for a batch that commits
after the watchdog already answered its senders. So an envelope is never stored
without reaching the room's connected devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from chat.clock import Clock
from chat.errors import ErrorCode, RelaisError
from chat.models import Envelope, Room
from chat.outages import OutageLog, describe
from chat.storage.base import AppendRequest, LateCommit, StoredEnvelope, StoreUnavailableError
from observability import metrics

logger = logging.getLogger(__name__)

_ENVELOPE = Envelope._meta.db_table
_ROOM = Room._meta.db_table

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
_HEADS = f"SELECT id, last_seq FROM {_ROOM} WHERE id = ANY(%s)"  # noqa: S608

_MAX_REPLANS = 5
_CONNECTION_LOST = (psycopg.OperationalError, psycopg.InterfaceError)  # PoolTimeout included
PROBE_SECONDS: Final = 0.25
"""How often the recovery task tries the database while it is away."""
_CONNECT_TIMEOUT_SECONDS: Final = 2
_UNCERTAIN_LIMIT: Final = 100_000


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
        # Autocommit: every statement commits on its own, one round trip each.
        self._conninfo = {
            **conninfo,
            "autocommit": True,
            "connect_timeout": _CONNECT_TIMEOUT_SECONDS,
        }
        self._pool_size = max(self._writer_count + 1, pool_size)
        self._pool = self._new_pool()
        self._old_pools: set[asyncio.Task[None]] = set()
        self._pending: list[_Pending] = []
        # Every request not answered yet, by deadline: the watchdog's worklist.
        self._unanswered: list[tuple[float, int, _Pending]] = []
        self._order = itertools.count()
        self._wakeup = asyncio.Event()
        self._writers: list[asyncio.Task[None]] = []
        self._watchdog: asyncio.Task[None] | None = None
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._available = asyncio.Event()
        self._available.set()
        self._recovery: asyncio.Task[None] | None = None
        self._probing = asyncio.Lock()
        self._outage = OutageLog(what="PostgreSQL (message store)", logger=logger, clock=clock)
        # Envelopes of batches that failed on a broken connection: maybe committed.
        self._uncertain: list[AppendRequest] = []
        self.on_late_commit: LateCommit | None = None

    def _new_pool(self) -> AsyncConnectionPool[Any]:
        return AsyncConnectionPool(
            kwargs=self._conninfo,
            min_size=1,
            max_size=self._pool_size,
            timeout=self._timeout,
            open=False,
        )

    @property
    def available(self) -> bool:
        """False from the first failure that shows the database is away until it is back."""
        return self._available.is_set()

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                pool = await self._open_new_pool()
                if pool is None:
                    self._mark_unavailable(None)
                else:
                    self._pool = pool
                self._writers = [
                    asyncio.create_task(self._write_forever(), name=f"relais-writer-{number}")
                    for number in range(self._writer_count)
                ]
                self._watchdog = asyncio.create_task(self._watch_forever(), name="relais-watchdog")
                self._opened = True

    async def append(
        self, request: AppendRequest, *, deadline: float | None = None
    ) -> StoredEnvelope:
        """Store ``request`` with the next batch; SERVER_BUSY if not committed in time.

        ``deadline`` (on the store's monotonic clock) is when the sender must have its
        answer; by default ``RELAIS_STORE_TIMEOUT`` from now. The time limit is enforced
        by one watchdog for all requests, not by a timer per request: on the hot path a
        timer costs more than the rest of ``append``. While the database is away the
        answer is SERVER_BUSY at once.
        """
        await self._ensure_open()
        now = self._clock.monotonic()
        if not self._available.is_set():
            self._outage.failed()
            raise StoreUnavailableError()
        due = now + self._timeout if deadline is None else min(deadline, now + self._timeout)
        if due <= now:
            raise RelaisError(ErrorCode.SERVER_BUSY)
        future: asyncio.Future[StoredEnvelope] = asyncio.get_running_loop().create_future()
        pending = _Pending(request, future, due)
        self._pending.append(pending)
        heapq.heappush(self._unanswered, (due, next(self._order), pending))
        self._wakeup.set()
        return await future

    def expire_overdue(self) -> int:
        """Answer SERVER_BUSY to every request past its deadline; return how many.

        A request answered this way may still be committed by its batch: its envelope is
        then handed to ``on_late_commit``, and the client's retry with the same id gets
        the original ack (docs/protocol.md §4).
        """
        now = self._clock.monotonic()
        expired = 0
        unanswered = self._unanswered
        while unanswered and (unanswered[0][2].future.done() or unanswered[0][0] <= now):
            _due, _order, pending = heapq.heappop(unanswered)
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
        rows = await self._read(_FETCH, (room_id, after_seq, up_to_seq, limit), binary=True)
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

    async def room_heads(self, room_ids: list[int]) -> dict[int, int]:
        """The ``last_seq`` of each of these rooms (missing rooms are left out)."""
        if not room_ids:
            return {}
        rows = await self._read(_HEADS, (room_ids,))
        return dict(rows)

    async def _read(
        self, query: str, params: tuple[Any, ...], *, binary: bool = False
    ) -> list[Any]:
        await self._ensure_open()
        if not self._available.is_set():
            raise StoreUnavailableError()
        try:
            async with self._pool.connection() as connection:
                cursor = await connection.execute(query, params, binary=binary)
                rows: list[Any] = await cursor.fetchall()
                return rows
        except _CONNECTION_LOST as error:
            await self._connection_failed(error)
            raise StoreUnavailableError() from None

    async def wait_available(self, within: float) -> bool:
        """Wait until the database is usable again (at most ``within`` seconds)."""
        if self._available.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._available.wait()
        return self._available.is_set()

    async def check(self) -> dict[str, Any]:
        """For /healthz: a round trip through the pool the message path uses, its size."""
        await self._ensure_open()
        stats = self._pool.get_stats()
        pool = {
            "size": stats.get("pool_size", 0),
            "idle": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
        }
        try:
            rows = await self._read("SELECT 1", ())
        except StoreUnavailableError:
            away = self._clock.monotonic() - (self._outage.down_since or self._clock.monotonic())
            return {"status": "error", "detail": "unavailable", "for_seconds": round(away, 1)}
        return {"status": "ok" if rows == [(1,)] else "error", "pool": pool}

    async def close(self) -> None:
        tasks = [*self._writers, *([self._watchdog] if self._watchdog else [])]
        if self._recovery is not None:
            tasks.append(self._recovery)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._writers = []
        self._watchdog = self._recovery = None
        # Queued or in a batch that will not finish: the senders retry with the same id.
        for _due, _order, pending in self._unanswered:
            if not pending.future.done():
                pending.future.set_exception(RelaisError(ErrorCode.SERVER_BUSY))
        self._pending.clear()
        self._unanswered.clear()
        for closing in list(self._old_pools):
            with contextlib.suppress(Exception):
                await closing
        self._old_pools.clear()
        if self._opened:
            await self._pool.close()
            self._opened = False

    # Availability -------------------------------------------------------------------

    async def _connection_failed(self, error: BaseException) -> None:
        """A statement failed on a broken connection. If the database answers a fresh
        connection right away (it restarted, the pool holds dead connections), swap in a
        new pool; otherwise mark the store unavailable until it answers."""
        if not self._available.is_set() or self._probing.locked():
            self._outage.failed(error)
            return
        async with self._probing:
            if await self._fresh_pool():
                logger.warning("message store: a pooled connection broke (%s)", describe(error))
                await self._settle_uncertain()
                return
            self._mark_unavailable(error)

    def _mark_unavailable(self, error: BaseException | None) -> None:
        self._outage.failed(error)
        self._available.clear()
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(), name="relais-store-recovery")

    async def _open_new_pool(self) -> AsyncConnectionPool[Any] | None:
        """A new open pool holding a working connection, or None when the database does
        not answer (tried with one plain connection first: a pool would log every one of
        its own attempts)."""
        try:
            probe = await AsyncConnection.connect(**self._conninfo)
        except _CONNECTION_LOST:
            return None
        await probe.close()
        pool = self._new_pool()
        try:
            await pool.open(wait=True, timeout=_CONNECT_TIMEOUT_SECONDS)
        except _CONNECTION_LOST:
            return None  # the pool closed itself
        return pool

    async def _fresh_pool(self) -> bool:
        """Use a new pool instead of the current one (which may be deep in its own
        reconnection backoff); False when the database does not answer."""
        pool = await self._open_new_pool()
        if pool is None:
            return False
        old, self._pool = self._pool, pool
        closing = asyncio.create_task(old.close(timeout=0), name="relais-old-pool")
        self._old_pools.add(closing)
        closing.add_done_callback(self._old_pools.discard)
        return True

    async def _recover(self) -> None:
        while True:
            await asyncio.sleep(PROBE_SECONDS)  # the probe's own period, not a test wait
            if not await self._fresh_pool():
                self._outage.failed(count=False)
                continue
            self._outage.recovered()
            self._available.set()
            await self._settle_uncertain()
            return

    async def _settle_uncertain(self) -> None:
        """Hand the envelopes of batches that failed on a broken connection, but were
        committed after all, to ``on_late_commit``."""
        requests, self._uncertain = self._uncertain, []
        if not requests:
            return
        keys = list({(r.device_id, r.client_id) for r in requests})
        try:
            async with self._pool.connection() as connection:
                found = await _stored_before(connection, keys)
        except _CONNECTION_LOST as error:
            self._uncertain = requests + self._uncertain
            self._mark_unavailable(error)
            return
        for envelope in found.values():
            self._late_commit(envelope)

    def _late_commit(self, envelope: StoredEnvelope) -> None:
        if self.on_late_commit is None:
            return
        try:
            self.on_late_commit(envelope)
        except Exception:
            logger.exception("publishing a late-committed envelope failed")

    # Writers ------------------------------------------------------------------------

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
        if not self._available.is_set():
            _fail(live, StoreUnavailableError())
            return
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
            except _CONNECTION_LOST as error:
                # Committed or not: unknown until the database answers again.
                if len(self._uncertain) < _UNCERTAIN_LIMIT:
                    self._uncertain.extend(p.request for p in live)
                metrics.STORE_FAILURES.inc()
                _fail(live, StoreUnavailableError())
                await self._connection_failed(error)
                return
            except Exception:
                logger.exception("storing a batch of %d envelopes failed", len(live))
                metrics.STORE_FAILURES.inc()
                _fail(live, RelaisError(ErrorCode.INTERNAL))
                return
            metrics.STORE_BATCH_SECONDS.observe(self._clock.monotonic() - started)
            metrics.ACKS.inc(sum(1 for result in results if not isinstance(result, RelaisError)))
            for pending, result in zip(live, results, strict=True):
                if pending.future.done():
                    if isinstance(result, StoredEnvelope) and not result.duplicate:
                        self._late_commit(result)  # its sender was told server_busy
                elif isinstance(result, RelaisError):
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
