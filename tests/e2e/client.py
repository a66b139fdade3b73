"""A minimal real WebSocket client (the ``websockets`` library) speaking protocol v1."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

TIMEOUT = 10


class WsClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.ws: ClientConnection | None = None

    async def connect(self) -> dict[str, Any]:
        self.ws = await connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            origin="http://127.0.0.1",  # type: ignore[arg-type]
            open_timeout=TIMEOUT,
        )
        return await self.receive_type("ready")

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    async def receive(self) -> dict[str, Any]:
        assert self.ws is not None
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        return frame

    async def receive_type(self, frame_type: str) -> dict[str, Any]:
        frame = await self.receive()
        assert frame["type"] == frame_type, frame
        return frame

    async def sync(self, rooms: dict[int, int]) -> list[dict[str, Any]]:
        """Send ``sync`` and return the backlog messages up to ``synced``."""
        await self.send({"type": "sync", "rooms": {str(k): v for k, v in rooms.items()}})
        messages: list[dict[str, Any]] = []
        while True:
            frame = await self.receive()
            if frame["type"] == "synced":
                return messages
            assert frame["type"] == "backlog", frame
            messages.extend(frame["messages"])

    async def frames_until_pong(self) -> list[dict[str, Any]]:
        await self.send({"type": "ping", "nonce": "barrier"})
        frames = []
        while (frame := await self.receive())["type"] != "pong":
            frames.append(frame)
        return frames

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
