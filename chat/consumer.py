"""The WebSocket consumer: a thin adapter from Channels to ``chat.connection``."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from chat.connection import Connection
from chat.runtime import get_runtime


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # Channels is untyped
    # Fan-out goes through chat.fanout (one Redis subscription per process). A channel-
    # layer channel per connection would cost a Redis subscription each, for nothing:
    # naming an alias that is not configured makes Channels skip it.
    channel_layer_alias = "unused-by-chat-connections"

    connection: Connection | None = None

    async def connect(self) -> None:
        runtime = await get_runtime()
        await self.accept()
        self.connection = Connection(runtime=runtime, send_text=self._send_text, close=self._close)
        await self.connection.open(
            identity=self.scope.get("relais_identity"),
            header_failed=bool(self.scope.get("relais_auth_failed")),
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.connection is None:
            return
        if text_data is not None:
            await self.connection.receive_text(text_data)
        else:
            await self.connection.receive_binary()

    async def disconnect(self, code: int) -> None:
        if self.connection is not None:
            await self.connection.closed()

    async def _send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def _close(self, code: int) -> None:
        await self.close(code=code)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        # Skip the generic dispatcher's dict lookups on the hot path.
        text = message.get("text")
        if text is not None and self.connection is not None:
            await self.connection.receive_text(text)
        else:
            await self.receive(text_data=text, bytes_data=message.get("bytes"))
