"""uvicorn's HTTP protocol with a deadline for the request head.

uvicorn closes an idle keep-alive connection, but a connection that never completes its
request head (a "slowloris": a few header bytes now and then, or nothing at all) is kept
forever, and with it a file descriptor and some memory. nginx times such clients out
in front (``client_header_timeout``), but the application must not rely on it: a
connection here gets ``RELAIS_HTTP_HEADER_TIMEOUT`` seconds (10 by default) from its
opening, and a later request on it from its first byte (uvicorn's keep-alive timeout
covers the wait between requests), to deliver a complete request head, WebSocket
handshakes included; then it is closed. Once the head is complete the
request runs as usual (a WebSocket then has its own authentication deadline,
docs/protocol.md §1).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_SECONDS = float(os.environ.get("RELAIS_HTTP_HEADER_TIMEOUT", "10"))


class HeadDeadlineHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that closes a connection whose request head is late."""

    _head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
