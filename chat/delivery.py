"""The outbound side of one connection: everything sent about rooms, in order.

One queue, drained by one writer task. The writer keeps, per room, the envelopes this
connection delivered, ``(live_from, position]``, and:

* drops an envelope it already delivered (``seq <= position``),
* fills a gap from the database before delivering a later envelope,
* answers ``sync`` in the same queue, so backlog and live envelopes never interleave,
  and sends in a backlog only what this connection has not delivered yet.

Live delivery of a room starts at its position in ``ready`` (docs/protocol.md §4, §5).
While the database is away the writer waits for it (``STORE_WAIT_SECONDS`` at most) and
then resumes; past that the connection is closed with 1013 (try again later), the true
reason, rather than left hanging. ``chat.connection`` owns one ``Delivery`` per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from channels.db import database_sync_to_async

from chat.conf import relais_settings
from chat.errors import RelaisError
from chat.fanout import HubEvent, room_topic
from chat.frames import BacklogFrame, encode, error_frame
from chat.outages import UNAVAILABLE, OutageLog
from chat.runtime import Runtime
from chat.services.devices import DeviceIdentity
from chat.services.history import SyncPlan, plan_sync
from chat.services.messages import live_message_text, message_out
from chat.storage.base import StoredEnvelope, StoreUnavailableError

logger = logging.getLogger(__name__)

CLOSE_INTERNAL: Final = 1011
CLOSE_TRY_AGAIN_LATER: Final = 1013
CLOSE_TOO_SLOW: Final = 4009

STORE_WAIT_SECONDS: Final = 30.0
"""How long the writer waits for an absent database before closing with 1013."""

# Bytes of envelopes in one backlog frame, counting each as its base64 body plus a bound
# on its other fields. With one envelope at most 64 KiB of text (a 48 KiB body), every
# frame the server sends stays under 128 KiB: the frame limit of common WebSocket
# stacks (autobahn under Daphne counts outgoing frames too).
BACKLOG_FRAME_BUDGET = 96 * 1024
_ENVELOPE_FIELDS_BOUND = 256  # room, seq, id (<= 64), sender, ts and JSON punctuation
_NO_UPPER_BOUND = 2**62

reads_outage = OutageLog(what="PostgreSQL (catch-up reads)", logger=logger)

SendText = Callable[[str], Awaitable[None]]
Close = Callable[[int], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class _Live:
    event: HubEvent


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Sync:
    requested: dict[int, int]


@dataclass(frozen=True, slots=True)
class _Joined:
    event: HubEvent


@dataclass(frozen=True, slots=True)
class _Left:
    event: HubEvent


@dataclass(frozen=True, slots=True)
class _CatchUp:
    room: int
    seq: int


_Outbound = _Live | _Text | _Sync | _Joined | _Left | _CatchUp


class _DatabaseGoneError(Exception):
    """The database stayed away longer than the connection waits for it."""


class Delivery:
    """What one connection sends about rooms; ``start`` once authenticated."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        identity: DeviceIdentity,
        subscriber: Any,
        send_text: SendText,
        refuse: Callable[[RelaisError, int], Awaitable[None]],
        close: Close,
    ) -> None:
        self._runtime = runtime
        self._identity = identity
        self._subscriber = subscriber  # what the hub calls (the connection)
        self._send_text = send_text
        self._refuse = refuse
        self._close = close
        self._settings = relais_settings()
        self.rooms: set[int] = set()
        self._positions: dict[int, int] = {}
        self._live_from: dict[int, int] = {}
        self._topics: list[str] = []
        self._outbound: asyncio.Queue[_Outbound] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._written = 0  # frames the writer sent (not acks and errors of the reader)
        self.stopped = False

    async def subscribe(self, topic: str) -> None:
        await self._runtime.hub.subscribe(topic, self._subscriber)
        self._topics.append(topic)

    def follow(self, room_id: int, last_seq: int) -> None:
        """Deliver the room live from ``last_seq`` (its position in ``ready``)."""
        self.rooms.add(room_id)
        self._positions[room_id] = last_seq
        self._live_from[room_id] = last_seq

    def start(self) -> None:
        """Start the writer (after ``ready``: what was queued meanwhile follows it)."""
        self._writer = asyncio.create_task(self._write_forever(), name="relais-connection-writer")

    async def stop(self) -> None:
        self.stopped = True
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        for topic in self._topics:
            await self._runtime.hub.unsubscribe(topic, self._subscriber)
        self._topics.clear()

    # What the connection queues -------------------------------------------------

    def live(self, event: HubEvent) -> None:
        self._enqueue(_Live(event))

    def text(self, text: str) -> None:
        self._enqueue(_Text(text))

    def sync(self, requested: dict[int, int]) -> None:
        self._enqueue(_Sync(requested))

    def joined(self, event: HubEvent) -> None:
        self._enqueue(_Joined(event))

    def left(self, event: HubEvent) -> None:
        self._enqueue(_Left(event))

    def room_positions(self) -> dict[int, int]:
        """The last sequence number delivered per room (for a catch-up)."""
        return dict(self._positions)

    def catch_up(self, heads: dict[int, int]) -> int:
        """Fetch from the database what the live stream may have missed, up to each
        room's ``heads`` (its ``last_seq``); return how many rooms were behind."""
        behind = 0
        for room_id, head in heads.items():
            position = self._positions.get(room_id)
            if position is not None and head > position:
                self._enqueue(_CatchUp(room_id, head))
                behind += 1
        return behind

    def _enqueue(self, item: _Outbound) -> None:
        if self.stopped:
            return
        if self._outbound.qsize() >= self._settings.outbound_queue_limit:
            self.stopped = True
            logger.info("device %s cannot keep up; disconnecting", self._identity.device_id)
            asyncio.get_running_loop().create_task(self._close(CLOSE_TOO_SLOW))
            return
        self._outbound.put_nowait(item)

    async def _emit(self, text: str) -> None:
        self._written += 1
        await self._send_text(text)

    # The writer -----------------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            item = await self._outbound.get()
            try:
                await self._write_when_available(item)
            except asyncio.CancelledError:
                raise
            except _DatabaseGoneError:
                logger.info("device %s: the database stayed away; closing", self._device())
                self.stopped = True
                await self._refuse(StoreUnavailableError(), CLOSE_TRY_AGAIN_LATER)
                return
            except Exception:
                logger.exception("delivering to device %s failed", self._device())
                self.stopped = True
                await self._close(CLOSE_INTERNAL)
                return

    async def _write_when_available(self, item: _Outbound) -> None:
        """Write ``item``; while the database is away, wait for it and write it again,
        as long as doing so cannot send a frame twice."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + STORE_WAIT_SECONDS
        # Live deliveries move the position envelope by envelope: resuming repeats nothing.
        resumable = isinstance(item, _Live | _CatchUp)
        while True:
            sent_before = self._written
            try:
                await self._write(item)
                return
            except UNAVAILABLE as error:
                reads_outage.failed(error)
            except StoreUnavailableError:
                pass
            if self._written != sent_before and not resumable:
                raise _DatabaseGoneError
            remaining = give_up_at - loop.time()
            if remaining <= 0 or not await self._runtime.store.wait_available(remaining):
                raise _DatabaseGoneError

    async def _write(self, item: _Outbound) -> None:
        if isinstance(item, _Live):
            await self._deliver_live(item.event)
        elif isinstance(item, _Text):
            await self._emit(item.text)
        elif isinstance(item, _Sync):
            await self._run_sync(item.requested)
        elif isinstance(item, _CatchUp):
            position = self._positions.get(item.room)
            if position is not None and item.seq > position:
                await self._send_range(item.room, position, item.seq)
        elif isinstance(item, _Joined):
            await self._join(item.event)
        else:
            await self._leave(item.event)

    async def _deliver_live(self, event: HubEvent) -> None:
        position = self._positions.get(event.room)
        if position is None or event.seq <= position:
            return
        if event.seq > position + 1:
            await self._send_range(event.room, position, event.seq - 1)
        await self._emit(event.text)
        self._positions[event.room] = event.seq

    async def _send_range(self, room_id: int, after_seq: int, up_to_seq: int) -> None:
        """Send stored envelopes as live frames, moving the position with each one.

        As in the live stream, the device's own envelopes are skipped: it has their
        acks (a ``sync`` backlog, by contrast, holds everything)."""
        own_device = self._identity.device_id
        position = after_seq
        while position < up_to_seq:
            envelopes = await self._runtime.store.fetch_range(
                room_id=room_id,
                after_seq=position,
                up_to_seq=up_to_seq,
                limit=self._settings.backlog_page,
            )
            if not envelopes:
                break
            for envelope in envelopes:
                if envelope.device_id != own_device:
                    await self._emit(live_message_text(envelope))
                position = envelope.seq
                if position > self._positions.get(room_id, 0):
                    self._positions[room_id] = position

    async def _run_sync(self, requested: dict[int, int]) -> None:
        identity = self._identity
        plan: SyncPlan = await database_sync_to_async(plan_sync)(
            device_id=identity.device_id,
            practitioner_id=identity.practitioner_id,
            requested=requested,
        )
        for room_id, code in plan.errors:
            await self._emit(error_frame(RelaisError(code), ref=str(room_id)))
        done: dict[str, int] = {}
        for entry in plan.entries:
            done[str(entry.room_id)] = await self._sync_room(entry.room_id, entry.start, entry.end)
        await self._emit(encode({"type": "synced", "rooms": done}))

    async def _sync_room(self, room_id: int, start: int, end: int) -> int:
        """The backlog of one room: what follows ``start`` up to ``end`` that this
        connection has not delivered yet. Returns the position reached."""
        position = self._positions.get(room_id)
        live_from = self._live_from.get(room_id)
        if position is None or live_from is None:  # not followed live (yet)
            position = live_from = start
        ranges = [
            (after, up_to)
            for after, up_to in ((start, min(live_from, end)), (max(start, position), end))
            if up_to > after
        ]
        for index, (after, up_to) in enumerate(ranges):
            await self._send_backlog(room_id, after, up_to, last=index == len(ranges) - 1)
        self._live_from[room_id] = min(live_from, start)
        self._positions[room_id] = max(position, end)
        return self._positions[room_id]

    async def _send_backlog(self, room_id: int, start: int, end: int, *, last: bool) -> None:
        position = start
        page = self._settings.backlog_page
        while position < end:
            envelopes = await self._runtime.store.fetch_range(
                room_id=room_id, after_seq=position, up_to_seq=end, limit=page
            )
            if not envelopes:
                break
            position = envelopes[-1].seq
            for chunk in _chunks_by_size(envelopes):
                last_chunk = chunk[-1].seq == position
                messages = [message_out(envelope) for envelope in chunk]
                more = not (last and last_chunk and position >= end)
                await self._emit(encode(BacklogFrame(room=room_id, messages=messages, more=more)))

    async def _join(self, event: HubEvent) -> None:
        room_id = event.room
        if room_id not in self.rooms:
            await self.subscribe(room_topic(room_id))
            self.rooms.add(room_id)
            await self._emit(event.text)
        # History starts at the join; a sync may have delivered more meanwhile.
        self._positions[room_id] = max(self._positions.get(room_id, event.seq), event.seq)
        self._live_from[room_id] = min(self._live_from.get(room_id, event.seq), event.seq)
        # Deliver what was committed between joining and subscribing.
        await self._write_when_available(_CatchUp(room_id, _NO_UPPER_BOUND))

    async def _leave(self, event: HubEvent) -> None:
        room_id = event.room
        topic = room_topic(room_id)
        self.rooms.discard(room_id)
        self._positions.pop(room_id, None)
        self._live_from.pop(room_id, None)
        if topic in self._topics:
            self._topics.remove(topic)
            await self._runtime.hub.unsubscribe(topic, self._subscriber)
        await self._emit(event.text)

    def _device(self) -> int:
        return self._identity.device_id


def _chunks_by_size(envelopes: list[StoredEnvelope]) -> list[list[StoredEnvelope]]:
    chunks: list[list[StoredEnvelope]] = [[]]
    size = 0
    for envelope in envelopes:
        encoded = (len(envelope.body) * 4 + 2) // 3 + _ENVELOPE_FIELDS_BOUND
        if chunks[-1] and size + encoded > BACKLOG_FRAME_BUDGET:
            chunks.append([])
            size = 0
        chunks[-1].append(envelope)
        size += encoded
    return chunks


async def catch_up_connections(
    runtime: Runtime, *, wait_seconds: float = STORE_WAIT_SECONDS
) -> int:
    """After the fan-out may have missed events (Redis came back), have every local
    connection fetch what it missed from the database: one query for the heads of all
    their rooms, then a fetch only for the connections behind. Returns how many
    (connection, room) pairs were behind."""
    deliveries = [
        delivery
        for subscriber in runtime.hub.local_subscribers()
        if (delivery := getattr(subscriber, "delivery", None)) is not None
        and isinstance(delivery, Delivery)
    ]
    rooms = sorted({room for d in deliveries for room in d.room_positions()})
    if not rooms:
        return 0
    for _attempt in range(2):
        try:
            heads: dict[int, int] = {}
            for start in range(0, len(rooms), 10_000):
                heads.update(await runtime.store.room_heads(rooms[start : start + 10_000]))
            break
        except StoreUnavailableError:
            if not await runtime.store.wait_available(wait_seconds):
                return 0
    else:
        return 0
    return sum(delivery.catch_up(heads) for delivery in deliveries)
