"""Clients that count, for the fault runs (``bench.faults``).

A ``Sender`` writes messages at a steady rate and sends them as a careful client does
(docs/protocol.md §4, §5): at most ``WINDOW`` unacknowledged at a time, and a send
answered ``server_busy`` or left unanswered by a lost connection is sent again with the
same id until it is acknowledged; the others wait their turn, written but not sent. A
``Receiver`` holds a connection to its room and, when it loses it, reconnects and syncs
from the last sequence number it holds. Both write what they see in a shared ``Ledger``:
every ack, every answer and how long it took, every pong, every close code and refused
handshake, every envelope received and when. ``verdict`` then compares the ledger with
the database: messages lost (acknowledged but not stored, or stored but never received)
and duplicated (stored twice, or received twice) must both be zero.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

WINDOW = 8
RESEND_AFTER_BUSY_SECONDS = 0.2
RECONNECT_SECONDS = 0.2
PING_EVERY_SECONDS = 0.5


def now() -> float:
    return asyncio.get_running_loop().time()


@dataclass
class Ledger:
    """What the clients observed (times on the event loop's clock)."""

    acked: dict[str, tuple[int, int]] = field(default_factory=dict)  # id → (room, seq)
    acked_at: dict[str, tuple[float, int]] = field(default_factory=dict)  # id → (time, server)
    duplicates_acked: int = 0
    # Every answer to a send frame: (sent at, answered at, code: "ack" or the error code).
    answers: list[tuple[float, float, str]] = field(default_factory=list)
    pongs: list[tuple[float, float]] = field(default_factory=list)  # (ping sent, pong)
    closes: Counter[str] = field(default_factory=Counter)  # close codes, refused handshakes
    close_times: list[tuple[float, str]] = field(default_factory=list)
    received: dict[int, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    received_at: dict[str, float] = field(default_factory=dict)  # id → first receipt

    def closed(self, reason: str) -> None:
        self.closes[reason] += 1
        self.close_times.append((now(), reason))


def _close_reason(error: BaseException) -> str:
    if isinstance(error, ConnectionClosed):
        received = error.rcvd
        return f"close {received.code}" if received is not None else "close without a frame"
    if isinstance(error, InvalidStatus):
        return f"handshake HTTP {error.response.status_code}"
    return f"connect {type(error).__name__}"


async def _connect(url: str, token: str) -> ClientConnection:
    return await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        origin="http://127.0.0.1",  # type: ignore[arg-type]
        open_timeout=5,
        # The client's own keepalive: a server that stops reading is noticed (1011).
        ping_interval=1,
        ping_timeout=5,
        close_timeout=2,
        max_size=256 * 1024,
    )


async def send_one(*, url: str, token: str, room: int, client_id: str) -> dict[str, Any]:
    """Connect, send one envelope, return its ack, leave."""
    async with await _connect(url, token) as websocket:
        assert json.loads(await websocket.recv())["type"] == "ready"
        body = base64.urlsafe_b64encode(client_id.encode()).decode().rstrip("=")
        await websocket.send(
            json.dumps({"type": "send", "room": room, "id": client_id, "body": body})
        )
        while True:
            frame: dict[str, Any] = json.loads(await websocket.recv())
            if frame["type"] == "ack" or frame["type"] == "error":
                return frame


class Sender:
    """Sends ``rate`` envelopes per second to ``room`` through server ``server``."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        server: int,
        token: str,
        room: int,
        rate: float,
        ledger: Ledger,
    ) -> None:
        self.name = name
        self.url = url
        self.server = server
        self.token = token
        self.room = room
        self.rate = rate
        self.ledger = ledger
        self.unacked: dict[str, float] = {}  # id → when last sent
        self.busy: dict[str, float] = {}  # id → when answered server_busy
        self.written: list[str] = []  # written, not sent yet (the window was full)
        self.numbers = 0

    @property
    def outstanding(self) -> bool:
        return bool(self.unacked or self.written)

    def body(self, client_id: str) -> str:
        return base64.urlsafe_b64encode(client_id.encode()).decode().rstrip("=")

    async def run(self, stop_sending: asyncio.Event, done: asyncio.Event) -> None:
        """Send until ``stop_sending``, then until everything sent is acknowledged (or
        ``done``)."""
        while not done.is_set() and (not stop_sending.is_set() or self.outstanding):
            try:
                websocket = await _connect(self.url, self.token)
            except (OSError, TimeoutError, InvalidStatus) as error:
                self.ledger.closed(_close_reason(error))
                await asyncio.sleep(RECONNECT_SECONDS)  # a client's reconnect delay
                continue
            try:
                await self._session(websocket, stop_sending, done)
            except ConnectionClosed as error:
                self.ledger.closed(_close_reason(error))
                await asyncio.sleep(RECONNECT_SECONDS)  # a client's reconnect delay
            finally:
                with contextlib.suppress(Exception):
                    await websocket.close()

    async def _session(
        self, websocket: ClientConnection, stop_sending: asyncio.Event, done: asyncio.Event
    ) -> None:
        first = json.loads(await websocket.recv())
        if first["type"] != "ready":  # e.g. server_busy, then a close code
            await websocket.recv()  # raises ConnectionClosed with the code
            return
        for client_id in list(self.unacked):  # resend what was never acknowledged
            await self._send(websocket, client_id)
        reader = asyncio.create_task(self._read(websocket))
        try:
            next_write = next_ping = now()
            while not done.is_set() and (not stop_sending.is_set() or self.outstanding):
                if reader.done():
                    reader.result()  # raises ConnectionClosed
                moment = now()
                while not stop_sending.is_set() and moment >= next_write:
                    self.numbers += 1
                    self.written.append(f"{self.name}-{self.numbers}")
                    next_write += 1 / self.rate
                while self.written and len(self.unacked) < WINDOW:
                    await self._send(websocket, self.written.pop(0))
                for client_id, answered in list(self.busy.items()):
                    if moment - answered >= RESEND_AFTER_BUSY_SECONDS:
                        del self.busy[client_id]
                        await self._send(websocket, client_id)
                if moment >= next_ping:
                    await websocket.send(json.dumps({"type": "ping", "nonce": repr(moment)}))
                    next_ping = moment + PING_EVERY_SECONDS
                await asyncio.sleep(min(0.02, 1 / self.rate))  # the load's own pace
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader

    async def _send(self, websocket: ClientConnection, client_id: str) -> None:
        self.unacked[client_id] = now()
        frame = {"type": "send", "room": self.room, "id": client_id, "body": self.body(client_id)}
        await websocket.send(json.dumps(frame))

    async def _read(self, websocket: ClientConnection) -> None:
        async for text in websocket:
            frame = json.loads(text)
            kind = frame["type"]
            moment = now()
            if kind == "ack":
                client_id = frame["id"]
                sent = self.unacked.pop(client_id, moment)
                self.busy.pop(client_id, None)
                self.ledger.answers.append((sent, moment, "ack"))
                if client_id in self.ledger.acked:
                    self.ledger.duplicates_acked += frame["duplicate"] is False
                    continue
                self.ledger.acked[client_id] = (frame["room"], frame["seq"])
                self.ledger.acked_at[client_id] = (moment, self.server)
            elif kind == "error" and frame.get("ref") in self.unacked:
                self.ledger.answers.append((self.unacked[frame["ref"]], moment, frame["code"]))
                self.busy[frame["ref"]] = moment
            elif kind == "pong" and frame.get("nonce"):
                self.ledger.pongs.append((float(frame["nonce"]), moment))


class Receiver:
    """Follows ``room`` through server ``server``: live, and by sync after a reconnect."""

    def __init__(self, *, url: str, token: str, room: int, ledger: Ledger) -> None:
        self.url = url
        self.token = token
        self.room = room
        self.ledger = ledger
        self.last = 0

    async def run(self, done: asyncio.Event) -> None:
        while not done.is_set():
            try:
                websocket = await _connect(self.url, self.token)
            except (OSError, TimeoutError, InvalidStatus) as error:
                self.ledger.closed(_close_reason(error))
                await asyncio.sleep(RECONNECT_SECONDS)  # a client's reconnect delay
                continue
            reading = asyncio.create_task(self._read(websocket))
            stopping = asyncio.create_task(done.wait())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if reading.done():
                failure = reading.exception()
                if failure is not None:
                    self.ledger.closed(_close_reason(failure))
                await asyncio.sleep(RECONNECT_SECONDS)  # a client's reconnect delay
            else:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await reading
            with contextlib.suppress(Exception):
                await websocket.close()

    async def _read(self, websocket: ClientConnection) -> None:
        first = json.loads(await websocket.recv())
        if first["type"] != "ready":
            await websocket.recv()  # raises ConnectionClosed with the code
            return
        await websocket.send(json.dumps({"type": "sync", "rooms": {str(self.room): self.last}}))
        async for text in websocket:
            frame = json.loads(text)
            if frame["type"] == "message":
                self._got(frame)
            elif frame["type"] == "backlog":
                for message in frame["messages"]:
                    self._got(message)

    def _got(self, message: dict[str, Any]) -> None:
        if message["room"] != self.room:
            return
        self.ledger.received[self.room][message["seq"]] += 1
        self.ledger.received_at.setdefault(message["id"], now())
        self.last = max(self.last, message["seq"])


def verdict(ledger: Ledger, stored: list[tuple[int, int, str]]) -> dict[str, Any]:
    """Compare what the clients saw with the database's ``(room, seq, client id)`` rows."""
    by_id: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for room, seq, client_id in stored:
        by_id[client_id].append((room, seq))
    stored_twice = sum(len(places) - 1 for places in by_id.values() if len(places) > 1)
    acked_not_stored = [
        client_id
        for client_id, place in ledger.acked.items()
        if place not in by_id.get(client_id, [])
    ]
    stored_not_received = [
        client_id
        for client_id, places in by_id.items()
        for room, seq in places
        if not ledger.received[room][seq]
    ]
    received_twice = sum(
        count - 1 for seqs in ledger.received.values() for count in seqs.values() if count > 1
    )
    gaps = 0
    for room in {room for room, _seq, _id in stored}:
        seqs = sorted(seq for r, seq, _id in stored if r == room)
        gaps += seqs[-1] - len(seqs) if seqs else 0
    return {
        "acked": len(ledger.acked),
        "stored": len(stored),
        "lost": len(acked_not_stored) + len(stored_not_received),
        "acked_not_stored": acked_not_stored[:10],
        "stored_not_received": stored_not_received[:10],
        "duplicated": stored_twice + received_twice + ledger.duplicates_acked,
        "sequence_gaps": gaps,
        "closes": dict(ledger.closes),
    }
