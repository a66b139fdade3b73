"""One client connection: authentication, inbound frames, ordered outbound delivery.

Inbound frames are handled one at a time, in order (so a device's sends get increasing
sequence numbers and their acks come back in order). Everything the connection sends
about rooms goes through one outbound queue drained by one writer task; the writer
keeps, per room, the last sequence number delivered and:

* drops an envelope it already delivered (``seq <= position``),
* fills a gap from the database before delivering a later envelope,
* answers ``sync`` in the same queue, so backlog and live envelopes never interleave.

Live delivery of a room starts with the connection's first ``sync``: before it the
position is unknown and the ``sync`` reads the database, which already holds anything
published earlier (events are published after commit). See docs/protocol.md §4 and §5.
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
from chat.presence import presence_tracker
from chat.ratelimit import TokenBucket
from chat.runtime import Runtime
from chat.services.devices import DeviceIdentity, authenticate_token
from chat.services.history import SyncPlan, plan_sync
from chat.services.messages import live_message_text, message_out
from chat.services.receipts import do_record_receipt
from chat.services.rooms import room_positions
from chat.storage.base import StoredEnvelope

logger = logging.getLogger(__name__)

CLOSE_TOO_LARGE: Final = 1009
CLOSE_AUTH: Final = 4001
CLOSE_BINARY: Final = 4003
CLOSE_FLOOD: Final = 4008
CLOSE_TOO_SLOW: Final = 4009
CLOSE_REVOKED: Final = 4010

# Bytes of envelopes in one backlog frame, counting each as its base64 body plus a bound
# on its other fields. With one envelope at most 64 KiB of text (a 48 KiB body), every
# frame the server sends stays under 128 KiB: the frame limit of common WebSocket
# stacks (autobahn under Daphne counts outgoing frames too).
BACKLOG_FRAME_BUDGET = 96 * 1024
_ENVELOPE_FIELDS_BOUND = 256  # room, seq, id (<= 64), sender, ts and JSON punctuation
_NO_UPPER_BOUND = 2**62

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


_Outbound = _Live | _Text | _Sync | _Joined | _Left


class Connection:
    """The protocol state of one WebSocket, independent of the ASGI server."""

    def __init__(self, *, runtime: Runtime, send_text: SendText, close: Close) -> None:
        self._runtime = runtime
        self._send_text = send_text
        self._close = close
        self._settings = relais_settings()
        self._bucket = TokenBucket(
            rate=self._settings.rate_per_second,
            burst=self._settings.rate_burst,
            clock=runtime.clock,
        )
        self._rate_limited = 0
        self.identity: DeviceIdentity | None = None
        self._rooms: set[int] = set()
        self._positions: dict[int, int] = {}
        self._synced_once = False
        self._topics: list[str] = []
        self._outbound: asyncio.Queue[_Outbound] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._closed = False
        self._present = False

    # Lifecycle ----------------------------------------------------------------

    async def open(self, *, identity: DeviceIdentity | None, header_failed: bool) -> None:
        """Called once the socket is accepted, with what the handshake authenticated."""
        if header_failed:
            await self._refuse_auth()
        elif identity is not None:
            await self._start(identity)
        else:
            loop = asyncio.get_running_loop()
            self._auth_timer = loop.call_later(
                self._settings.auth_timeout_seconds, self._auth_deadline_passed
            )

    async def closed(self) -> None:
        """Called when the socket is gone: stop the writer, leave the topics."""
        self._closing = True
        self._closed = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        for topic in self._topics:
            await self._runtime.hub.unsubscribe(topic, self)
        self._topics.clear()
        if self._present and self.identity is not None:
            self._present = False
            await presence_tracker(clock=self._runtime.clock).device_disconnected(
                self.identity.device_id
            )

    async def _start(self, identity: DeviceIdentity) -> None:
        self.identity = identity
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        hub = self._runtime.hub
        # Subscribe before reading positions: anything committed after the read is
        # then certain to arrive as an event.
        for topic in (
            device_topic(identity.device_id),
            practitioner_topic(identity.practitioner_id),
        ):
            await hub.subscribe(topic, self)
            self._topics.append(topic)
        positions = await database_sync_to_async(room_positions)(
            practitioner_id=identity.practitioner_id
        )
        for position in positions:
            topic = room_topic(position.room_id)
            await hub.subscribe(topic, self)
            self._topics.append(topic)
            self._rooms.add(position.room_id)
        self._writer = asyncio.create_task(self._write_forever(), name="relais-connection-writer")
        # Before "ready": a device that has it is known to be connected (no Web Push).
        tracker = presence_tracker(clock=self._runtime.clock)
        await tracker.device_connected(identity.device_id)
        if self._closed:  # gone while presence was recorded: closed() did not count it
            await tracker.device_disconnected(identity.device_id)
            return
        self._present = True
        s = self._settings
        await self._send_text(
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

    def _auth_deadline_passed(self) -> None:
        if self.identity is None and not self._closing:
            self._closing = True
            asyncio.get_running_loop().create_task(self._close(CLOSE_AUTH))

    async def _refuse_auth(self) -> None:
        self._closing = True
        await self._send_text(error_frame(RelaisError(ErrorCode.AUTH_FAILED)))
        await self._close(CLOSE_AUTH)

    # Inbound ------------------------------------------------------------------

    async def receive_text(self, text: str) -> None:
        if self._closing:
            return
        limit = self._settings.max_frame_bytes
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode("utf-8")) > limit):
            self._closing = True
            await self._send_text(error_frame(RelaisError(ErrorCode.FRAME_TOO_LARGE)))
            await self._close(CLOSE_TOO_LARGE)
            return
        if not self._bucket.take():
            await self._on_rate_limited()
            return
        try:
            frame = parse_frame(text)
        except RelaisError as error:
            await self._send_text(error_frame(error))
            return
        try:
            await self._dispatch(frame)
        except RelaisError as error:
            ref = frame.id if isinstance(frame, SendFrame) else None
            await self._send_text(error_frame(error, ref=ref))
        except Exception:
            logger.exception("a %s frame failed", type(frame).__name__)
            ref = frame.id if isinstance(frame, SendFrame) else None
            await self._send_text(error_frame(RelaisError(ErrorCode.INTERNAL), ref=ref))

    async def receive_binary(self) -> None:
        self._closing = True
        await self._send_text(error_frame(RelaisError(ErrorCode.BAD_FRAME, "Binary frame.")))
        await self._close(CLOSE_BINARY)

    async def _on_rate_limited(self) -> None:
        self._rate_limited += 1
        if self._rate_limited >= self._settings.flood_errors_before_close:
            self._closing = True
            logger.warning("closing a flooding connection (device %s)", self._device_label())
            await self._close(CLOSE_FLOOD)
            return
        await self._send_text(error_frame(RelaisError(ErrorCode.RATE_LIMITED)))

    def _device_label(self) -> str:
        return str(self.identity.device_id) if self.identity else "unauthenticated"

    async def _dispatch(self, frame: InboundFrame) -> None:
        if isinstance(frame, AuthFrame):
            await self._on_auth(frame)
            return
        identity = self.identity
        if identity is None:
            raise RelaisError(ErrorCode.NOT_AUTHENTICATED)
        if isinstance(frame, SendFrame):
            await self._on_send(identity, frame)
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
        identity = await database_sync_to_async(authenticate_token)(token=frame.token)
        if identity is None:
            await self._refuse_auth()
            return
        await self._start(identity)

    async def _on_send(self, identity: DeviceIdentity, frame: SendFrame) -> None:
        from chat.services.messages import do_send

        stored = await do_send(
            store=self._runtime.store,
            hub=self._runtime.hub,
            identity=identity,
            room_id=frame.room,
            client_id=frame.id,
            body_text=frame.body,
        )
        await self._send_text(
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
            if not key.isdigit() or len(key) > 19:
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

    def _enqueue(self, item: _Outbound) -> None:
        if self._outbound.qsize() >= self._settings.outbound_queue_limit:
            if not self._closing:
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
                await self._write(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("delivering to device %s failed", self._device_label())
                self._closing = True
                await self._close(CLOSE_TOO_SLOW)
                return

    async def _write(self, item: _Outbound) -> None:
        if isinstance(item, _Live):
            await self._deliver_live(item.event)
        elif isinstance(item, _Text):
            await self._send_text(item.text)
        elif isinstance(item, _Sync):
            await self._run_sync(item.requested)
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
        await self._send_text(event.text)
        self._positions[event.room] = event.seq

    async def _send_range(self, room_id: int, after_seq: int, up_to_seq: int) -> int:
        """Send stored envelopes as live frames; return the last seq passed.

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
                    await self._send_text(live_message_text(envelope))
            position = envelopes[-1].seq
        self._positions[room_id] = max(position, self._positions.get(room_id, 0))
        return position

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
            await self._send_text(error_frame(RelaisError(code), ref=str(room_id)))
        done: dict[str, int] = {}
        for entry in plan.entries:
            await self._send_backlog(entry.room_id, entry.start, entry.end)
            self._positions[entry.room_id] = entry.end
            done[str(entry.room_id)] = entry.end
        self._synced_once = True
        await self._send_text(encode({"type": "synced", "rooms": done}))

    async def _send_backlog(self, room_id: int, start: int, end: int) -> None:
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
                more = not (last_chunk and position >= end)
                await self._send_text(
                    encode(BacklogFrame(room=room_id, messages=messages, more=more))
                )

    async def _join(self, event: HubEvent) -> None:
        room_id = event.room
        topic = room_topic(room_id)
        await self._runtime.hub.subscribe(topic, self)
        self._topics.append(topic)
        self._rooms.add(room_id)
        await self._send_text(event.text)
        if self._synced_once:
            # Deliver what was committed between joining and subscribing.
            self._positions[room_id] = event.seq
            await self._send_range(room_id, event.seq, _NO_UPPER_BOUND)

    async def _leave(self, event: HubEvent) -> None:
        room_id = event.room
        topic = room_topic(room_id)
        self._rooms.discard(room_id)
        self._positions.pop(room_id, None)
        if topic in self._topics:
            self._topics.remove(topic)
            await self._runtime.hub.unsubscribe(topic, self)
        await self._send_text(event.text)


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


__all__ = ["Connection", "MessageOut"]
