"""The benchmark's reference: a plain ``websockets`` room fan-out server.

It speaks the subset of protocol v1 the load generator uses (``ready``, ``sync`` /
``backlog`` / ``synced``, ``send`` / ``ack`` / ``message``, ``ping`` / ``pong``) for the
rooms of the fixture file, and does the same work as Relais *without* persistence,
authorisation checks, rate limits or a second process: sequence numbers and the
catch-up room live in memory. It is the Python limit on this machine for this traffic,
which is what Relais is compared against (docs/performance.md).

    python -m bench.reference_server --fixtures var/bench/fixtures.json --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection, broadcast, serve

_BACKLOG_PAGE = 500


class _Inbound(msgspec.Struct):
    type: str
    room: int = 0
    id: str = ""
    body: str = ""
    rooms: dict[str, int] = {}
    nonce: str | None = None


class ReferenceServer:
    def __init__(self, fixtures: dict[str, Any]) -> None:
        self.identities: dict[str, tuple[int, str, list[int]]] = {}
        self.members: dict[int, list[int]] = defaultdict(list)
        self.last_seq: dict[int, int] = defaultdict(int)
        self.connections: dict[int, set[ServerConnection]] = defaultdict(set)
        rooms = [*fixtures["rooms"], fixtures["team_room"]]
        catchup = fixtures["catchup"]
        for room in rooms:
            for member in room["members"]:
                self._add(member, room["id"])
        self._add(catchup["reader"], catchup["room"])
        # The catch-up room's history, held in memory like the database would hold it.
        self.history: dict[int, list[bytes]] = {
            catchup["room"]: [
                msgspec.json.encode(
                    {
                        "room": catchup["room"],
                        "seq": seq,
                        "id": f"backlog-{seq}",
                        "sender": {"device": 0, "practitioner": "0"},
                        "body": base64.urlsafe_b64encode(secrets.token_bytes(200))
                        .rstrip(b"=")
                        .decode(),
                        "ts": 0,
                    }
                )
                for seq in range(1, catchup["messages"] + 1)
            ]
        }
        self.last_seq[catchup["room"]] = catchup["messages"]
        self._decoder = msgspec.json.Decoder(_Inbound)

    def _add(self, member: dict[str, Any], room_id: int) -> None:
        device, practitioner, rooms = self.identities.get(
            member["token"], (member["device"], member["practitioner"], [])
        )
        rooms.append(room_id)
        self.identities[member["token"]] = (device, practitioner, rooms)
        self.members[room_id].append(device)

    async def handle(self, websocket: ServerConnection) -> None:
        header = websocket.request.headers.get("Authorization", "") if websocket.request else ""
        identity = self.identities.get(header.removeprefix("Bearer "))
        if identity is None:
            await websocket.close(4001)
            return
        device, practitioner, rooms = identity
        await websocket.send(
            json.dumps(
                {
                    "type": "ready",
                    "device": device,
                    "practitioner": practitioner,
                    "rooms": {str(r): self.last_seq[r] for r in rooms},
                    "limits": {},
                }
            )
        )
        self.connections[device].add(websocket)
        try:
            async for text in websocket:
                await self._on_frame(websocket, device, practitioner, text)
        finally:
            self.connections[device].discard(websocket)

    async def _on_frame(
        self, websocket: ServerConnection, device: int, practitioner: str, text: str | bytes
    ) -> None:
        frame = self._decoder.decode(text)
        if frame.type == "send":
            room = frame.room
            seq = self.last_seq[room] + 1
            self.last_seq[room] = seq
            ts = asyncio.get_running_loop().time()
            message = msgspec.json.encode(
                {
                    "type": "message",
                    "room": room,
                    "seq": seq,
                    "id": frame.id,
                    "sender": {"device": device, "practitioner": practitioner},
                    "body": frame.body,
                    "ts": int(ts * 1000),
                }
            ).decode()
            await websocket.send(
                json.dumps(
                    {
                        "type": "ack",
                        "id": frame.id,
                        "room": room,
                        "seq": seq,
                        "ts": int(ts * 1000),
                        "duplicate": False,
                    }
                )
            )
            recipients = [
                connection
                for member in self.members[room]
                if member != device
                for connection in self.connections[member]
            ]
            broadcast(recipients, message)
        elif frame.type == "sync":
            done: dict[str, int] = {}
            for key, after in frame.rooms.items():
                room = int(key)
                history = self.history.get(room, [])[after:]
                for start in range(0, len(history), _BACKLOG_PAGE):
                    page = history[start : start + _BACKLOG_PAGE]
                    more = start + _BACKLOG_PAGE < len(history)
                    frame_bytes = b'{"type":"backlog","room":%d,"messages":[%s],"more":%s}' % (
                        room,
                        b",".join(page),
                        b"true" if more else b"false",
                    )
                    await websocket.send(frame_bytes.decode())
                done[key] = self.last_seq[room]
            await websocket.send(json.dumps({"type": "synced", "rooms": done}))
        elif frame.type == "ping":
            await websocket.send(json.dumps({"type": "pong", "nonce": frame.nonce}))


async def serve_forever(fixtures: dict[str, Any], host: str, port: int) -> None:
    server = ReferenceServer(fixtures)
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(server.handle, host, port, max_size=64 * 1024, compression=None):
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve_forever(json.loads(args.fixtures.read_text()), args.host, args.port))


if __name__ == "__main__":
    main()
