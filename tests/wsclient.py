"""A strict WebSocket test client over Channels' WebsocketCommunicator."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator

from server.asgi import application

TIMEOUT = 5


class Client:
    """Connects to the real ASGI application; every receive has a timeout."""

    def __init__(
        self,
        *,
        token: str | None = None,
        origin: str | None = "http://127.0.0.1",
        address: str | None = None,
    ):
        headers: list[tuple[bytes, bytes]] = []
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        headers.append((b"host", b"127.0.0.1"))
        self.communicator = WebsocketCommunicator(application, "/ws/v1/", headers=headers)
        if address is not None:  # the client address the ASGI server would give
            self.communicator.scope["client"] = (address, 50_000)

    async def connect(self) -> bool:
        connected, _subprotocol = await self.communicator.connect(timeout=TIMEOUT)
        return bool(connected)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def receive(self) -> dict[str, Any]:
        output = await self.communicator.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            raise AssertionError(f"closed with code {output.get('code')}")
        frame: dict[str, Any] = json.loads(output["text"])
        return frame

    async def receive_type(self, frame_type: str) -> dict[str, Any]:
        frame = await self.receive()
        assert frame["type"] == frame_type, frame
        return frame

    async def expect_close(self) -> int:
        """Read frames until the server closes; return the close code."""
        for _ in range(1000):
            output = await self.communicator.receive_output(timeout=TIMEOUT)
            if output["type"] == "websocket.close":
                return int(output.get("code", 1000))
        raise AssertionError("the server did not close")

    async def frames_until_pong(self) -> list[dict[str, Any]]:
        """Send a ping and return what arrives before its pong (a delivery barrier)."""
        await self.send({"type": "ping", "nonce": "barrier"})
        frames: list[dict[str, Any]] = []
        while True:
            frame = await self.receive()
            if frame["type"] == "pong" and frame["nonce"] == "barrier":
                return frames
            frames.append(frame)

    async def start(self) -> dict[str, Any]:
        """Connect, read ``ready``, send an empty ``sync`` and read up to ``synced``."""
        assert await self.connect()
        ready = await self.receive_type("ready")
        await self.send({"type": "sync", "rooms": {}})
        while (await self.receive())["type"] != "synced":
            pass
        return ready

    async def close(self) -> None:
        await self.communicator.disconnect()
