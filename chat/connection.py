"""One client connection: authentication, inbound frames, ordered outbound delivery.

Reading never waits for the database, so a slow or absent database never stalls a
socket (its pings, its other frames, the WebSocket keepalive). Frames that need the
database (``auth``, ``send``, ``receipt``) go to a per-connection inbox that one worker
task handles in order: a device's sends get increasing sequence numbers and their acks
come back in order. ``ping``, ``typing`` and ``sync`` of an authenticated connection are
handled as they arrive. A send that waited in the inbox keeps the deadline of its
arrival: the client gets ``server_busy`` at most ``RELAIS_STORE_TIMEOUT`` after it sent
the frame, and at once while the database is known to be away.

Everything the connection sends about rooms goes through one outbound queue drained by
one writer task; the writer keeps, per room, the envelopes this connection delivered,
``(live_from, position]``, and:

* drops an envelope it already delivered (``seq <= position``),
* fills a gap from the database before delivering a later envelope,
* answers ``sync`` in the same queue, so backlog and live envelopes never interleave,
  and sends in the backlog only what this connection has not delivered yet.

Live delivery of a room starts at its position in ``ready`` (docs/protocol.md §4, §5).
While the database is away the writer waits for it (``STORE_WAIT_SECONDS`` at most) and
then resumes; past that the connection is closed with 1013 (try again later), the true
reason, rather than left hanging.
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
from chat.errors import ErrorCode, RelaisError
from chat.fanout import HubEvent, device_topic, practitioner_topic, room_topic
from chat.frames import (
    AckFrame,
    AuthFrame,
    BacklogFrame,
    FrameError,
    InboundFrame,
    MessageOut,
    PingFrame,
    ReceiptFrame,
    SendFrame,
    SyncFrame,
    TypingFrame,
    encode,
    error_frame,
    parse_frame,
)
from chat.limits import connection_counts
from chat.outages import UNAVAILABLE, OutageLog
from chat.presence import presence_tracker
from chat.ratelimit import TokenBucket
from chat.runtime import Runtime
from chat.services.devices import DeviceIdentity, authenticate_token
from chat.services.history import SyncPlan, plan_sync
from chat.services.messages import live_message_text, message_out
from chat.services.receipts import do_record_receipt
from chat.services.rooms import room_positions
from chat.storage.base import StoredEnvelope, StoreUnavailableError

logger = logging.getLogger(__name__)

CLOSE_TOO_LARGE: Final = 1009
CLOSE_INTERNAL: Final = 1011
CLOSE_TRY_AGAIN_LATER: Final = 1013
CLOSE_AUTH: Final = 4001
CLOSE_BINARY: Final = 4003
CLOSE_FLOOD: Final = 4008
CLOSE_TOO_SLOW: Final = 4009
CLOSE_REVOKED: Final = 4010
CLOSE_TOO_MANY: Final = 4029

INBOX_LIMIT: Final = 256
"""Frames waiting for the worker; beyond, ``server_busy`` at once."""
STORE_WAIT_SECONDS: Final = 30.0
"""How long the writer waits for an absent database before closing with 1013."""

# Bytes of envelopes in one backlog frame, counting each as its base64 body plus a bound
# on its other fields. With one envelope at most 64 KiB of text (a 48 KiB body), every
# frame the server sends stays under 128 KiB: the frame limit of common WebSocket
# stacks (autobahn under Daphne counts outgoing frames too).
BACKLOG_FRAME_BUDGET = 96 * 1024
_ENVELOPE_FIELDS_BOUND = 256  # room, seq, id (<= 64), sender, ts and JSON punctuation
_NO_UPPER_BOUND = 2**62

_requests_outage = OutageLog(what="PostgreSQL (connection requests)", logger=logger)

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


def _ref(frame: InboundFrame) -> str | None:
    return frame.id if isinstance(frame, SendFrame) else None


class Connection:
    """The protocol state of one WebSocket, independent of the ASGI server."""

    def __init__(
        self, *, runtime: Runtime, send_text: SendText, close: Close, address: str = ""
    ) -> None:
        self._runtime = runtime
        self._send_text = send_text
        self._close = close
        self._address = address
        self._settings = relais_settings()
        self._bucket = TokenBucket(
            rate=self._settings.rate_per_second,
            burst=self._settings.rate_burst,
            clock=runtime.clock,
        )
        self._rate_limited = 0
        self.identity: DeviceIdentity | None = None
        self._rooms: set[int] = set()
        # Per room, the envelopes this connection delivered: (live_from, position].
        self._positions: dict[int, int] = {}
        self._live_from: dict[int, int] = {}
        self._topics: list[str] = []
        self._inbox: asyncio.Queue[tuple[InboundFrame, float]] = asyncio.Queue()
        self._outbound: asyncio.Queue[_Outbound] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self._counts = connection_counts()
        self._counted = False
        self._counted_device: int | None = None
        self._frames_sent = 0
        self._closing = False
        self._closed = False
        self._present = False

    # Lifecycle ----------------------------------------------------------------

    async def open(
        self, *, identity: DeviceIdentity | None, header_failed: bool, unavailable: bool = False
    ) -> None:
        """Called once the socket is accepted, with what the handshake authenticated
        (``unavailable``: the token could not be checked, the database is away)."""
        if not self._counts.open(self._address):
            await self._refuse(RelaisError(ErrorCode.TOO_MANY_CONNECTIONS), CLOSE_TOO_MANY)
            return
        self._counted = True
        if unavailable:
            await self._refuse(StoreUnavailableError(), CLOSE_TRY_AGAIN_LATER)
            return
        if header_failed:
            await self._refuse(RelaisError(ErrorCode.AUTH_FAILED), CLOSE_AUTH)
            return
        self._worker = asyncio.create_task(self._work_forever(), name="relais-connection-worker")
        if identity is not None:
            await self._start(identity)
        else:
            loop = asyncio.get_running_loop()
            self._auth_timer = loop.call_later(
                self._settings.auth_timeout_seconds, self._auth_deadline_passed
            )

    async def closed(self) -> None:
        """Called when the socket is gone: stop the tasks, leave the topics."""
        self._closing = True
        self._closed = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        for task in (self._worker, self._writer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for topic in self._topics:
            await self._runtime.hub.unsubscribe(topic, self)
        self._topics.clear()
        if self._counted:
            self._counted = False
            self._counts.close(self._address, self._counted_device)
        if self._present and self.identity is not None:
            self._present = False
            await presence_tracker(clock=self._runtime.clock).device_disconnected(
                self.identity.device_id
            )

    async def _start(self, identity: DeviceIdentity) -> None:
        if not self._counts.authenticate(self._address, identity.device_id):
            await self._refuse(RelaisError(ErrorCode.TOO_MANY_CONNECTIONS), CLOSE_TOO_MANY)
            return
        self._counted_device = identity.device_id
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self.identity = identity
        hub = self._runtime.hub
        # Subscribe before reading positions: anything committed after the read is
        # then certain to arrive as an event.
        for topic in (
            device_topic(identity.device_id),
            practitioner_topic(identity.practitioner_id),
        ):
            await hub.subscribe(topic, self)
            self._topics.append(topic)
        try:
            positions = await database_sync_to_async(room_positions)(
                practitioner_id=identity.practitioner_id
            )
        except UNAVAILABLE as error:
            _requests_outage.failed(error)
            await self._refuse(StoreUnavailableError(), CLOSE_TRY_AGAIN_LATER)
            return
        for position in positions:
            topic = room_topic(position.room_id)
            await hub.subscribe(topic, self)
            self._topics.append(topic)
            self._rooms.add(position.room_id)
            self._positions[position.room_id] = position.last_seq
            self._live_from[position.room_id] = position.last_seq
        # Before "ready": a device that has it is known to be connected (no Web Push).
        tracker = presence_tracker(clock=self._runtime.clock)
        await tracker.device_connected(identity.device_id)
        if self._closed:  # gone while presence was recorded: closed() did not count it
            await tracker.device_disconnected(identity.device_id)
            return
        self._present = True
        s = self._settings
        await self._send(
            encode(
                {
                    "type": "ready",
                    "device": identity.device_id,
                    "practitioner": identity.practitioner_id,
                    "rooms": {str(p.room_id): p.last_seq for p in positions},
                    "limits": {
                        "max_frame_bytes": s.max_frame_bytes,
                        "max_body_bytes": s.max_body_bytes,
                        "rate_per_second": s.rate_per_second,
                        "rate_burst": s.rate_burst,
                        "backlog_page": s.backlog_page,
                    },
                }
            )
        )
        # After "ready": live messages queued meanwhile follow it.
        self._writer = asyncio.create_task(self._write_forever(), name="relais-connection-writer")

    def _auth_deadline_passed(self) -> None:
        if self.identity is None and not self._closing:
            self._closing = True
            asyncio.get_running_loop().create_task(self._close(CLOSE_AUTH))

    async def _refuse(self, error: RelaisError, close_code: int) -> None:
        """Say why, then close with the code that says it too."""
        self._closing = True
        await self._send(error_frame(error))
        await self._close(close_code)

    async def _send(self, text: str) -> None:
        self._frames_sent += 1
        await self._send_text(text)

    # Inbound ------------------------------------------------------------------

    async def receive_text(self, text: str) -> None:
        if self._closing:
            return
        limit = self._settings.max_frame_bytes
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode("utf-8")) > limit):
            await self._refuse(RelaisError(ErrorCode.FRAME_TOO_LARGE), CLOSE_TOO_LARGE)
            return
        if not self._bucket.take():
            await self._on_rate_limited()
            return
        try:
            frame = parse_frame(text)
        except FrameError as error:
            await self._send(error_frame(error, ref=error.ref))
            return
        received_at = self._runtime.clock.monotonic()
        if self.identity is not None and isinstance(frame, PingFrame | TypingFrame | SyncFrame):
            await self._handle(frame, received_at)  # no database: at once
            return
        if self._inbox.qsize() >= INBOX_LIMIT:
            await self._send(error_frame(RelaisError(ErrorCode.SERVER_BUSY), ref=_ref(frame)))
            return
        self._inbox.put_nowait((frame, received_at))

    async def receive_binary(self) -> None:
        await self._refuse(RelaisError(ErrorCode.BAD_FRAME, "Binary frame."), CLOSE_BINARY)

    async def _on_rate_limited(self) -> None:
        self._rate_limited += 1
        if self._rate_limited >= self._settings.flood_errors_before_close:
            self._closing = True
            logger.warning("closing a flooding connection (device %s)", self._device_label())
            await self._close(CLOSE_FLOOD)
            return
        await self._send(error_frame(RelaisError(ErrorCode.RATE_LIMITED)))

    def _device_label(self) -> str:
        return str(self.identity.device_id) if self.identity else "unauthenticated"

    async def _work_forever(self) -> None:
        while True:
            frame, received_at = await self._inbox.get()
            if self._closing:
                continue
            await self._handle(frame, received_at)

    async def _handle(self, frame: InboundFrame, received_at: float) -> None:
        """Dispatch one frame and answer its refusal; the connection stays usable."""
        try:
            await self._dispatch(frame, received_at)
        except RelaisError as error:
            await self._send(error_frame(error, ref=_ref(frame)))
        except UNAVAILABLE as error:
            _requests_outage.failed(error)
            await self._send(error_frame(StoreUnavailableError(), ref=_ref(frame)))
        except Exception:
            logger.exception("a %s frame failed", type(frame).__name__)
            await self._send(error_frame(RelaisError(ErrorCode.INTERNAL), ref=_ref(frame)))
        else:
            if isinstance(frame, ReceiptFrame | AuthFrame):
                _requests_outage.recovered()

    async def _dispatch(self, frame: InboundFrame, received_at: float) -> None:
        if isinstance(frame, AuthFrame):
            await self._on_auth(frame)
            return
        identity = self.identity
        if identity is None:
            raise RelaisError(ErrorCode.NOT_AUTHENTICATED)
        if isinstance(frame, SendFrame):
            await self._on_send(identity, frame, received_at)
        elif isinstance(frame, SyncFrame):
            self._on_sync(frame)
        elif isinstance(frame, ReceiptFrame):
            await database_sync_to_async(do_record_receipt)(
                identity=identity, room_id=frame.room, seq=frame.seq, kind=frame.kind
            )
        elif isinstance(frame, TypingFrame):
            self._on_typing(identity, frame)
        elif isinstance(frame, PingFrame):
            # Through the outbound queue: the pong comes after everything queued before it.
            self._enqueue(_Text(encode({"type": "pong", "nonce": frame.nonce})))

    async def _on_auth(self, frame: AuthFrame) -> None:
        if self.identity is not None:
            raise RelaisError(ErrorCode.ALREADY_AUTHENTICATED)
        try:
            identity = await database_sync_to_async(authenticate_token)(token=frame.token)
        except UNAVAILABLE as error:
            _requests_outage.failed(error)
            await self._refuse(StoreUnavailableError(), CLOSE_TRY_AGAIN_LATER)
            return
        if identity is None:
            await self._refuse(RelaisError(ErrorCode.AUTH_FAILED), CLOSE_AUTH)
            return
        await self._start(identity)

    async def _on_send(
        self, identity: DeviceIdentity, frame: SendFrame, received_at: float
    ) -> None:
        from chat.services.messages import do_send

        stored = await do_send(
            store=self._runtime.store,
            hub=self._runtime.hub,
            identity=identity,
            room_id=frame.room,
            client_id=frame.id,
            body_text=frame.body,
            deadline=received_at + self._settings.store_timeout_seconds,
        )
        await self._send(
            encode(
                AckFrame(
                    id=stored.client_id,
                    room=stored.room_id,
                    seq=stored.seq,
                    ts=stored.created_at_ms,
                    duplicate=stored.duplicate,
                )
            )
        )

    def _on_sync(self, frame: SyncFrame) -> None:
        requested: dict[int, int] = {}
        for key, seq in frame.rooms.items():
            # ASCII digits only: superscripts, Arabic-Indic or fullwidth digits are not
            # room ids (str.isdigit says they are digits, and int() reads some of them).
            if not (key.isascii() and key.isdigit()) or len(key) > 19:
                raise RelaisError(ErrorCode.BAD_FRAME, f"Room id {key[:20]!r} is not a number.")
            requested[int(key)] = seq
        self._enqueue(_Sync(requested))

    def _on_typing(self, identity: DeviceIdentity, frame: TypingFrame) -> None:
        if frame.room not in self._rooms:
            raise RelaisError(ErrorCode.NOT_MEMBER)
        text = encode(
            {
                "type": "typing",
                "room": frame.room,
                "active": frame.active,
                "device": identity.device_id,
                "practitioner": identity.practitioner_id,
            }
        )
        self._runtime.hub.publish(
            room_topic(frame.room),
            HubEvent(kind="frame", room=frame.room, text=text, device=identity.device_id),
        )

    # Events from the hub ------------------------------------------------------

    def on_event(self, event: HubEvent) -> None:
        identity = self.identity
        if identity is None or self._closing:
            return
        kind = event.kind
        if kind == "message":
            if event.device != identity.device_id:
                self._enqueue(_Live(event))
        elif kind == "frame":
            if event.device != identity.device_id:
                self._enqueue(_Text(event.text))
        elif kind == "member_added":
            if event.practitioner == identity.practitioner_id and event.room not in self._rooms:
                self._enqueue(_Joined(event))
            elif event.practitioner != identity.practitioner_id:
                self._enqueue(_Text(event.text))
        elif kind == "member_removed":
            if event.practitioner == identity.practitioner_id:
                self._enqueue(_Left(event))
            else:
                self._enqueue(_Text(event.text))
        elif kind == "device_revoked" and event.device == identity.device_id:
            self._closing = True
            asyncio.get_running_loop().create_task(self._close(CLOSE_REVOKED))

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
        if self._closing:
            return
        if self._outbound.qsize() >= self._settings.outbound_queue_limit:
            self._closing = True
            logger.info("device %s cannot keep up; disconnecting", self._device_label())
            asyncio.get_running_loop().create_task(self._close(CLOSE_TOO_SLOW))
            return
        self._outbound.put_nowait(item)

    # Outbound writer ----------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            item = await self._outbound.get()
            try:
                await self._write_when_available(item)
            except asyncio.CancelledError:
                raise
            except _DatabaseGoneError:
                logger.info("device %s: the database stayed away; closing", self._device_label())
                await self._refuse(StoreUnavailableError(), CLOSE_TRY_AGAIN_LATER)
                return
            except Exception:
                logger.exception("delivering to device %s failed", self._device_label())
                self._closing = True
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
            sent_before = self._frames_sent
            try:
                await self._write(item)
                return
            except UNAVAILABLE as error:
                _requests_outage.failed(error)
            except StoreUnavailableError:
                pass
            if self._frames_sent != sent_before and not resumable:
                raise _DatabaseGoneError
            remaining = give_up_at - loop.time()
            if remaining <= 0 or not await self._runtime.store.wait_available(remaining):
                raise _DatabaseGoneError

    async def _write(self, item: _Outbound) -> None:
        if isinstance(item, _Live):
            await self._deliver_live(item.event)
        elif isinstance(item, _Text):
            await self._send(item.text)
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
        await self._send(event.text)
        self._positions[event.room] = event.seq

    async def _send_range(self, room_id: int, after_seq: int, up_to_seq: int) -> None:
        """Send stored envelopes as live frames, moving the position with each one.

        As in the live stream, the device's own envelopes are skipped: it has their
        acks (a ``sync`` backlog, by contrast, holds everything)."""
        own_device = self.identity.device_id if self.identity else None
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
                    await self._send(live_message_text(envelope))
                position = envelope.seq
                if position > self._positions.get(room_id, 0):
                    self._positions[room_id] = position

    async def _run_sync(self, requested: dict[int, int]) -> None:
        identity = self.identity
        if identity is None:
            return
        plan: SyncPlan = await database_sync_to_async(plan_sync)(
            device_id=identity.device_id,
            practitioner_id=identity.practitioner_id,
            requested=requested,
        )
        for room_id, code in plan.errors:
            await self._send(error_frame(RelaisError(code), ref=str(room_id)))
        done: dict[str, int] = {}
        for entry in plan.entries:
            done[str(entry.room_id)] = await self._sync_room(entry.room_id, entry.start, entry.end)
        await self._send(encode({"type": "synced", "rooms": done}))

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
                await self._send(encode(BacklogFrame(room=room_id, messages=messages, more=more)))

    async def _join(self, event: HubEvent) -> None:
        room_id = event.room
        if room_id not in self._rooms:
            topic = room_topic(room_id)
            await self._runtime.hub.subscribe(topic, self)
            self._topics.append(topic)
            self._rooms.add(room_id)
            await self._send(event.text)
        # History starts at the join; a sync may have delivered more meanwhile.
        self._positions[room_id] = max(self._positions.get(room_id, event.seq), event.seq)
        self._live_from[room_id] = min(self._live_from.get(room_id, event.seq), event.seq)
        # Deliver what was committed between joining and subscribing.
        await self._write_when_available(_CatchUp(room_id, _NO_UPPER_BOUND))

    async def _leave(self, event: HubEvent) -> None:
        room_id = event.room
        topic = room_topic(room_id)
        self._rooms.discard(room_id)
        self._positions.pop(room_id, None)
        self._live_from.pop(room_id, None)
        if topic in self._topics:
            self._topics.remove(topic)
            await self._runtime.hub.unsubscribe(topic, self)
        await self._send(event.text)


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
    connections = [s for s in runtime.hub.local_subscribers() if isinstance(s, Connection)]
    rooms = sorted({room for c in connections for room in c.room_positions()})
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
    return sum(connection.catch_up(heads) for connection in connections)


__all__ = ["Connection", "MessageOut", "catch_up_connections"]
