"""One client connection: authentication and inbound frames (``chat.delivery`` sends).

Reading never waits for the database, so a slow or absent database never stalls a
socket (its pings, its other frames, the WebSocket keepalive). Frames that need the
database (``auth``, ``send``, ``receipt``) go to a per-connection inbox that one worker
task handles in order: a device's sends get increasing sequence numbers and their acks
come back in order. ``ping``, ``typing`` and ``sync`` of an authenticated connection are
handled as they arrive. A send that waited in the inbox keeps the deadline of its
arrival: the client gets ``server_busy`` at most ``RELAIS_STORE_TIMEOUT`` after it sent
the frame, and at once while the database is known to be away.

Everything sent about rooms (live messages, backlogs, pongs, membership changes) goes
through the connection's ``Delivery``, created once the connection is authenticated.
See docs/protocol.md §4 and §5.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from channels.db import database_sync_to_async

from chat.conf import relais_settings
from chat.delivery import CLOSE_TRY_AGAIN_LATER, Delivery
from chat.errors import ErrorCode, RelaisError
from chat.fanout import HubEvent, device_topic, practitioner_topic, room_topic
from chat.frames import (
    AckFrame,
    AuthFrame,
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
from chat.services.receipts import do_record_receipt
from chat.services.rooms import room_positions
from chat.storage.base import StoreUnavailableError

logger = logging.getLogger(__name__)

CLOSE_TOO_LARGE: Final = 1009
CLOSE_AUTH: Final = 4001
CLOSE_BINARY: Final = 4003
CLOSE_FLOOD: Final = 4008
CLOSE_REVOKED: Final = 4010
CLOSE_TOO_MANY: Final = 4029

INBOX_LIMIT: Final = 256
"""Frames waiting for the worker; beyond, ``server_busy`` at once."""

_requests_outage = OutageLog(what="PostgreSQL (connection requests)", logger=logger)

SendText = Callable[[str], Awaitable[None]]
Close = Callable[[int], Coroutine[Any, Any, None]]


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
        self.delivery: Delivery | None = None
        self._inbox: asyncio.Queue[tuple[InboundFrame, float]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self._counts = connection_counts()
        self._counted = False
        self._counted_device: int | None = None
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
        if self._worker is not None and self._worker is not asyncio.current_task():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self.delivery is not None:
            await self.delivery.stop()
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
        delivery = Delivery(
            runtime=self._runtime,
            identity=identity,
            subscriber=self,
            send_text=self._send_text,
            refuse=self._refuse,
            close=self._close_once,
        )
        self.identity, self.delivery = identity, delivery
        # Subscribe before reading positions: anything committed after the read is
        # then certain to arrive as an event (queued until the writer starts).
        await delivery.subscribe(device_topic(identity.device_id))
        await delivery.subscribe(practitioner_topic(identity.practitioner_id))
        try:
            positions = await database_sync_to_async(room_positions)(
                practitioner_id=identity.practitioner_id
            )
        except UNAVAILABLE as error:
            _requests_outage.failed(error)
            await self._refuse(StoreUnavailableError(), CLOSE_TRY_AGAIN_LATER)
            return
        for position in positions:
            await delivery.subscribe(room_topic(position.room_id))
            delivery.follow(position.room_id, position.last_seq)
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
        delivery.start()

    def _auth_deadline_passed(self) -> None:
        if self.identity is None and not self._closing:
            self._closing = True
            asyncio.get_running_loop().create_task(self._close(CLOSE_AUTH))

    async def _refuse(self, error: RelaisError, close_code: int) -> None:
        """Say why, then close with the code that says it too."""
        self._closing = True
        await self._send_text(error_frame(error))
        await self._close(close_code)

    async def _close_once(self, code: int) -> None:
        self._closing = True
        await self._close(code)

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
            await self._send_text(error_frame(error, ref=error.ref))
            return
        received_at = self._runtime.clock.monotonic()
        if self.identity is not None and isinstance(frame, PingFrame | TypingFrame | SyncFrame):
            await self._handle(frame, received_at)  # no database: at once
            return
        if self._inbox.qsize() >= INBOX_LIMIT:
            await self._send_text(error_frame(RelaisError(ErrorCode.SERVER_BUSY), ref=_ref(frame)))
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
        await self._send_text(error_frame(RelaisError(ErrorCode.RATE_LIMITED)))

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
            await self._send_text(error_frame(error, ref=_ref(frame)))
        except UNAVAILABLE as error:
            _requests_outage.failed(error)
            await self._send_text(error_frame(StoreUnavailableError(), ref=_ref(frame)))
        except Exception:
            logger.exception("a %s frame failed", type(frame).__name__)
            await self._send_text(error_frame(RelaisError(ErrorCode.INTERNAL), ref=_ref(frame)))
        else:
            if isinstance(frame, ReceiptFrame | AuthFrame):
                _requests_outage.recovered()

    async def _dispatch(self, frame: InboundFrame, received_at: float) -> None:
        if isinstance(frame, AuthFrame):
            await self._on_auth(frame)
            return
        identity, delivery = self.identity, self.delivery
        if identity is None or delivery is None:
            raise RelaisError(ErrorCode.NOT_AUTHENTICATED)
        if isinstance(frame, SendFrame):
            await self._on_send(identity, frame, received_at)
        elif isinstance(frame, SyncFrame):
            delivery.sync(_requested_rooms(frame))
        elif isinstance(frame, ReceiptFrame):
            await database_sync_to_async(do_record_receipt)(
                identity=identity, room_id=frame.room, seq=frame.seq, kind=frame.kind
            )
        elif isinstance(frame, TypingFrame):
            self._on_typing(identity, delivery, frame)
        elif isinstance(frame, PingFrame):
            # Through the delivery queue: the pong comes after everything queued before it.
            delivery.text(encode({"type": "pong", "nonce": frame.nonce}))

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

    def _on_typing(self, identity: DeviceIdentity, delivery: Delivery, frame: TypingFrame) -> None:
        if frame.room not in delivery.rooms:
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
        identity, delivery = self.identity, self.delivery
        if identity is None or delivery is None or self._closing:
            return
        kind = event.kind
        if kind == "message":
            if event.device != identity.device_id:
                delivery.live(event)
        elif kind == "frame":
            if event.device != identity.device_id:
                delivery.text(event.text)
        elif kind == "member_added":
            if event.practitioner == identity.practitioner_id and event.room not in delivery.rooms:
                delivery.joined(event)
            elif event.practitioner != identity.practitioner_id:
                delivery.text(event.text)
        elif kind == "member_removed":
            if event.practitioner == identity.practitioner_id:
                delivery.left(event)
            else:
                delivery.text(event.text)
        elif kind == "device_revoked" and event.device == identity.device_id:
            self._closing = True
            asyncio.get_running_loop().create_task(self._close(CLOSE_REVOKED))


def _requested_rooms(frame: SyncFrame) -> dict[int, int]:
    requested: dict[int, int] = {}
    for key, seq in frame.rooms.items():
        # ASCII digits only: superscripts, Arabic-Indic or fullwidth digits are not
        # room ids (str.isdigit says they are digits, and int() reads some of them).
        if not (key.isascii() and key.isdigit()) or len(key) > 19:
            raise RelaisError(ErrorCode.BAD_FRAME, f"Room id {key[:20]!r} is not a number.")
        requested[int(key)] = seq
    return requested


__all__ = ["Connection", "MessageOut"]
