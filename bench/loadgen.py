"""The load generator: real WebSocket clients, in a process of their own.

Scenarios (all speak protocol v1, so the same code drives Relais and the reference):

``pairs``    100 two-member rooms, closed loop: in each room A sends a 200-byte envelope,
             waits for its ``ack`` and for B's ``message``, and sends the next.
``team``     one 50-member care-team room; ``--senders`` members send in a closed loop,
             each waiting for its ``ack`` and for the 49 deliveries of its envelope.
``rate``     open loop: ``--rate`` envelopes per second offered over the 100 pair rooms
             on a fixed schedule, whatever the server's answers; latency is measured from
             the scheduled send time, so a stalled server cannot hide its backlog.
``pairs --encrypt``  the same with end-to-end encrypted envelopes: the sender encrypts
             and signs, the receiver verifies and decrypts before the delivery counts.
``catchup``  a device that missed 10,000 envelopes connects and sends ``sync``; time from
             ``sync`` to ``synced`` with every envelope received, in order, without a gap.

Deliveries are ``message`` frames received by a device other than the sender, counted
inside the measurement window (after ``--warmup``). Latency is send → delivery.

    python -m bench.loadgen --fixtures F --url ws://127.0.0.1:8001/ws/v1/ --scenario pairs
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect

from bench.e2ee_traffic import EncryptedPair

BODY_BYTES = 200
CONNECT_TIMEOUT = 30


class _Backlogged(msgspec.Struct):
    seq: int


class _Frame(msgspec.Struct):
    type: str
    id: str = ""
    room: int = 0
    seq: int = 0
    rooms: dict[str, int] = {}
    messages: list[_Backlogged] = []
    code: str = ""
    body: str = ""


_decoder = msgspec.json.Decoder(_Frame)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


@dataclass
class Window:
    """The measurement window and what was seen inside it."""

    start: float
    end: float
    deliveries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def record_delivery(self, sent_at: float, received_at: float) -> None:
        if self.start <= received_at < self.end:
            self.deliveries += 1
        if self.start <= sent_at < self.end:
            self.latencies_ms.append((received_at - sent_at) * 1000)

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies_ms)
        seconds = self.end - self.start
        return {
            "deliveries": self.deliveries,
            "seconds": round(seconds, 3),
            "deliveries_per_s": round(self.deliveries / seconds, 1),
            "p50_ms": round(_percentile(latencies, 0.50), 2),
            "p99_ms": round(_percentile(latencies, 0.99), 2),
            "max_ms": round(latencies[-1], 2) if latencies else None,
            "errors": self.errors,
        }


class Device:
    """One connected device: a reader task hands each frame to the callbacks."""

    def __init__(self, url: str, member: dict[str, Any]) -> None:
        self.url = url
        self.token: str = member["token"]
        self.device_id: int = member["device"]
        self.ws: ClientConnection | None = None
        self.on_ack: Callable[[_Frame, float], None] = lambda frame, now: None
        self.on_message: Callable[[_Frame, float], None] = lambda frame, now: None
        self.on_error: Callable[[_Frame], None] = lambda frame: None
        self._reader: asyncio.Task[None] | None = None
        self._synced: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        self.ws = await connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            origin="http://127.0.0.1",  # type: ignore[arg-type]
            open_timeout=CONNECT_TIMEOUT,
            compression=None,
            max_size=None,
        )
        ready = _decoder.decode(await self.ws.recv())
        if ready.type != "ready":
            raise RuntimeError(f"expected ready, got {ready.type}")
        # Start live delivery from where the rooms stand now: no backlog to replay.
        self._synced = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_forever())
        await self.ws.send(json.dumps({"type": "sync", "rooms": ready.rooms}))
        await asyncio.wait_for(self._synced, CONNECT_TIMEOUT)

    async def _read_forever(self) -> None:
        assert self.ws is not None
        clock = time.perf_counter
        async for text in self.ws:
            now = clock()
            frame = _decoder.decode(text)
            kind = frame.type
            if kind == "message":
                self.on_message(frame, now)
            elif kind == "ack":
                self.on_ack(frame, now)
            elif kind == "synced":
                if self._synced is not None and not self._synced.done():
                    self._synced.set_result(None)
            elif kind == "error":
                self.on_error(frame)

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


async def _both(
    acked: asyncio.Future[None],
    delivered: asyncio.Future[None],
    client_id: str,
    seconds: float,
    window: Window,
) -> None:
    """Wait for an envelope's ack and delivery; fail with what is missing."""
    _done, pending = await asyncio.wait([acked, delivered], timeout=seconds)
    if pending:
        missing = " and ".join(
            name for name, future in (("ack", acked), ("delivery", delivered)) if not future.done()
        )
        hint = ""
        if "rate_limited" in window.errors:
            hint = " (the server rate-limited this client: see RELAIS_WS_RATE_PER_SECOND)"
        raise RuntimeError(f"{client_id}: no {missing} after {seconds} s{hint}")


def _bodies(count: int = 64) -> list[str]:
    return [
        base64.urlsafe_b64encode(secrets.token_bytes(BODY_BYTES)).rstrip(b"=").decode()
        for _ in range(count)
    ]


def _send_text(room: int, client_id: str, body: str) -> str:
    return f'{{"type":"send","room":{room},"id":"{client_id}","body":"{body}"}}'


async def _connect_all(devices: list[Device], parallel: int = 20) -> None:
    limit = asyncio.Semaphore(parallel)

    async def one(device: Device) -> None:
        async with limit:
            await device.connect()

    await asyncio.gather(*(one(device) for device in devices))


def _urls(urls: list[str]) -> itertools.cycle[str]:
    return itertools.cycle(urls)


def _pair_devices(fixtures: dict[str, Any], urls: list[str]) -> list[tuple[int, Device, Device]]:
    """(room, A, B) for each pair room; with several URLs, A and B use different ones."""
    url_cycle = _urls(urls)
    pairs = []
    for room in fixtures["rooms"]:
        first, second = room["members"][:2]
        pairs.append((room["id"], Device(next(url_cycle), first), Device(next(url_cycle), second)))
    return pairs


async def run_pairs(fixtures: dict[str, Any], urls: list[str], args: argparse.Namespace) -> Any:
    """Closed loop in every pair room."""
    tag = secrets.token_hex(4)
    pairs = _pair_devices(fixtures, urls)
    await _connect_all([device for _, a, b in pairs for device in (a, b)])
    now = time.perf_counter()
    window = Window(start=now + args.warmup, end=now + args.warmup + args.duration)
    bodies = _bodies()
    waiting: dict[str, tuple[float, asyncio.Future[None], asyncio.Future[None]]] = {}
    encrypted = {room_id: EncryptedPair.create() for room_id, _, _ in pairs} if args.encrypt else {}

    def on_ack(frame: _Frame, _now: float) -> None:
        entry = waiting.get(frame.id)
        if entry is not None and not entry[1].done():
            entry[1].set_result(None)

    def on_message(frame: _Frame, received_at: float) -> None:
        entry = waiting.get(frame.id)
        if entry is not None and not entry[2].done():
            if encrypted:
                encrypted[frame.room].open(frame.body)  # verified and decrypted, or it raises
                received_at = time.perf_counter()
            window.record_delivery(entry[0], received_at)
            entry[2].set_result(None)

    def on_error(frame: _Frame) -> None:
        window.errors[frame.code] = window.errors.get(frame.code, 0) + 1

    loop = asyncio.get_running_loop()

    async def room_loop(room_id: int, sender: Device, receiver: Device) -> None:
        sender.on_ack, sender.on_error = on_ack, on_error
        receiver.on_message = on_message
        for number in itertools.count():
            if time.perf_counter() >= window.end:
                return
            client_id = f"{tag}-{room_id}-{number}"
            acked, delivered = loop.create_future(), loop.create_future()
            waiting[client_id] = (time.perf_counter(), acked, delivered)
            body = encrypted[room_id].seal() if encrypted else bodies[number % len(bodies)]
            await sender.send(_send_text(room_id, client_id, body))
            await _both(acked, delivered, client_id, args.timeout, window)
            del waiting[client_id]

    await asyncio.gather(*(room_loop(room_id, a, b) for room_id, a, b in pairs))
    await asyncio.gather(*(device.close() for _, a, b in pairs for device in (a, b)))
    return window.summary()


async def run_team(fixtures: dict[str, Any], urls: list[str], args: argparse.Namespace) -> Any:
    """Closed loop of ``--senders`` members in one large room."""
    tag = secrets.token_hex(4)
    room = fixtures["team_room"]
    url_cycle = _urls(urls)
    devices = [Device(next(url_cycle), member) for member in room["members"]]
    await _connect_all(devices)
    now = time.perf_counter()
    window = Window(start=now + args.warmup, end=now + args.warmup + args.duration)
    recipients = len(devices) - 1
    bodies = _bodies()
    loop = asyncio.get_running_loop()
    # client id -> [sent at, deliveries still expected, ack future, all-delivered future]
    waiting: dict[str, list[Any]] = {}

    def on_ack(frame: _Frame, _now: float) -> None:
        entry = waiting.get(frame.id)
        if entry is not None and not entry[2].done():
            entry[2].set_result(None)

    def on_message(frame: _Frame, received_at: float) -> None:
        entry = waiting.get(frame.id)
        if entry is None:
            return
        window.record_delivery(entry[0], received_at)
        entry[1] -= 1
        if entry[1] == 0:
            entry[3].set_result(None)

    def on_error(frame: _Frame) -> None:
        window.errors[frame.code] = window.errors.get(frame.code, 0) + 1

    for device in devices:
        device.on_ack, device.on_message, device.on_error = on_ack, on_message, on_error

    async def sender_loop(sender: Device) -> None:
        for number in itertools.count():
            if time.perf_counter() >= window.end:
                return
            client_id = f"{tag}-{sender.device_id}-{number}"
            acked, delivered = loop.create_future(), loop.create_future()
            waiting[client_id] = [time.perf_counter(), recipients, acked, delivered]
            await sender.send(_send_text(room["id"], client_id, bodies[number % len(bodies)]))
            await _both(acked, delivered, client_id, args.timeout, window)
            del waiting[client_id]

    await asyncio.gather(*(sender_loop(device) for device in devices[: args.senders]))
    await asyncio.gather(*(device.close() for device in devices))
    return {**window.summary(), "members": len(devices), "senders": args.senders}


async def run_rate(fixtures: dict[str, Any], urls: list[str], args: argparse.Namespace) -> Any:
    """Open loop: a fixed offered rate spread over the pair rooms."""
    tag = secrets.token_hex(4)
    pairs = _pair_devices(fixtures, urls)
    await _connect_all([device for _, a, b in pairs for device in (a, b)])
    per_room = args.rate / len(pairs)
    interval = 1 / per_room
    now = time.perf_counter()
    window = Window(start=now + args.warmup, end=now + args.warmup + args.duration)
    bodies = _bodies()
    scheduled: dict[str, float] = {}
    sent = 0
    acks = 0
    senders_left = len(pairs)
    drained = asyncio.Event()

    def on_ack(_frame: _Frame, _now: float) -> None:
        nonlocal acks
        acks += 1

    def on_message(frame: _Frame, received_at: float) -> None:
        sent_at = scheduled.pop(frame.id, None)
        if sent_at is not None:
            window.record_delivery(sent_at, received_at)
        if not senders_left and not scheduled:
            drained.set()

    def on_error(frame: _Frame) -> None:
        window.errors[frame.code] = window.errors.get(frame.code, 0) + 1

    async def room_loop(index: int, room_id: int, sender: Device, receiver: Device) -> None:
        nonlocal sent, senders_left
        sender.on_ack, sender.on_error = on_ack, on_error
        receiver.on_message = on_message
        # Spread the rooms' schedules evenly over one interval.
        due = now + interval * index / len(pairs)
        for number in itertools.count():
            if due >= window.end:
                senders_left -= 1
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule itself: an open loop waits for time
            client_id = f"{tag}-{room_id}-{number}"
            scheduled[client_id] = due
            await sender.send(_send_text(room_id, client_id, bodies[number % len(bodies)]))
            sent += 1
            due += interval

    await asyncio.gather(*(room_loop(i, r, a, b) for i, (r, a, b) in enumerate(pairs)))
    # Give the last envelopes time to arrive; whatever has not arrived is reported.
    if scheduled:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), args.timeout)
    await asyncio.gather(*(device.close() for _, a, b in pairs for device in (a, b)))
    return {
        **window.summary(),
        "offered_per_s": args.rate,
        "sent": sent,
        "acks": acks,
        "undelivered": len(scheduled),
    }


async def run_catchup(fixtures: dict[str, Any], urls: list[str], args: argparse.Namespace) -> Any:
    """Time a full catch-up of the pre-filled room, ``--repeat`` times."""
    catchup = fixtures["catchup"]
    expected = list(range(1, catchup["messages"] + 1))
    timings: list[float] = []
    for _ in range(args.repeat):
        ws = await connect(
            urls[0],
            additional_headers={"Authorization": f"Bearer {catchup['reader']['token']}"},
            origin="http://127.0.0.1",  # type: ignore[arg-type]
            open_timeout=CONNECT_TIMEOUT,
            compression=None,
            max_size=None,
        )
        await ws.recv()  # ready
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "sync", "rooms": {str(catchup["room"]): 0}}))
        seqs: list[int] = []
        while True:
            frame = _decoder.decode(await asyncio.wait_for(ws.recv(), args.timeout))
            if frame.type == "backlog":
                seqs.extend(message.seq for message in frame.messages)
            elif frame.type == "synced":
                break
        timings.append(time.perf_counter() - started)
        await ws.close()
        if seqs != expected:
            raise RuntimeError(f"catch-up incomplete: {len(seqs)} of {len(expected)}")
    timings.sort()
    median = timings[len(timings) // 2]
    return {
        "messages": catchup["messages"],
        "repeat": args.repeat,
        "median_s": round(median, 4),
        "max_s": round(timings[-1], 4),
        "deliveries_per_s": round(catchup["messages"] / median, 1),
    }


SCENARIOS = {"pairs": run_pairs, "team": run_team, "rate": run_rate, "catchup": run_catchup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, required=True)
    parser.add_argument("--url", action="append", required=True, help="repeat for N processes")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--senders", type=int, default=10, help="team: concurrent senders")
    parser.add_argument("--rate", type=float, default=1000.0, help="rate: envelopes per second")
    parser.add_argument("--repeat", type=int, default=5, help="catchup: repetitions")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-envelope timeout")
    parser.add_argument(
        "--encrypt", action="store_true", help="pairs: end-to-end encrypt every envelope"
    )
    args = parser.parse_args()
    fixtures = json.loads(args.fixtures.read_text())
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    result = runner(SCENARIOS[args.scenario](fixtures, args.url, args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
