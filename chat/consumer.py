"""The WebSocket consumer: a thin adapter from Channels to ``chat.connection``.

Channels gives Relais its routing, the origin check and the authentication middleware.
Two things of its generic consumer are skipped on the per-frame path, because they cost
more than everything else a frame does (measured in docs/performance.md):

* ``AsyncConsumer.dispatch`` hops to Django's database thread before every frame to
  close stale connections (``aclose_old_connections``). A chat connection never uses
  the ORM from the event loop: its database work runs through ``database_sync_to_async``
  (which closes stale connections itself) or the message store's own pool.
* ``await_many_dispatch`` creates a task and waits on a set of futures for every frame,
  to listen to a channel layer as well. Fan-out goes through ``chat.fanout`` instead, so
  the consumer has a single source of messages and reads it in a plain loop.
"""

from __future__ import annotations

from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from chat.connection import Connection
from chat.runtime import get_runtime

Message = dict[str, Any]


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # Channels is untyped
    connection: Connection | None = None

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.scope = scope
        self.channel_layer = None  # no per-connection channel: see the module docstring
        self.base_send = send
        try:
            while True:
                message: Message = await receive()
                if message["type"] == "websocket.receive":
                    await self.websocket_receive(message)
                elif message["type"] == "websocket.connect":
                    await self.websocket_connect(message)
                elif message["type"] == "websocket.disconnect":
                    await self.websocket_disconnect(message)
        except StopConsumer:
            pass

    async def connect(self) -> None:
        runtime = await get_runtime()
        await self.accept()
        client = self.scope.get("client") or ("", 0)
        self.connection = Connection(
            runtime=runtime, send_text=self._send_text, close=self._close, address=str(client[0])
        )
        await self.connection.open(
            identity=self.scope.get("relais_identity"),
            header_failed=bool(self.scope.get("relais_auth_failed")),
            unavailable=bool(self.scope.get("relais_auth_unavailable")),
        )

    async def websocket_receive(self, message: Message) -> None:
        if self.connection is None:
            return
        text = message.get("text")
        if text is not None:
            await self.connection.receive_text(text)
        else:
            await self.connection.receive_binary()

    async def disconnect(self, code: int) -> None:
        if self.connection is not None:
            await self.connection.closed()

    async def _send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def _close(self, code: int) -> None:
        await self.close(code=code)
