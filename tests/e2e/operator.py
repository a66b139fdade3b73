"""The dishonest operator's front door: a reverse proxy in front of a real server
process that answers each client as the operator likes.

The tests play an operator who has the database, the log key and the code; this proxy
adds what such an operator also controls: every byte between the server and each
client. It forwards HTTP requests and WebSocket frames to the real server unchanged,
except where a test installs a rule for one client (recognised by its device token):
rewrite a REST answer, drop, hold back, reorder or inject WebSocket frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

JsonRewrite = Callable[[str, str, Any], Any]  # (method, path, answer) -> answer
FrameRule = Callable[[dict[str, Any]], Awaitable[list[dict[str, Any]]]]  # frame -> frames


@dataclass
class ClientRules:
    """What the operator does to one client's traffic."""

    rewrite: JsonRewrite | None = None
    frames: FrameRule | None = None
    sockets: list[web.WebSocketResponse] = field(default_factory=list)


class Operator:
    """``await Operator.start(upstream_url)``; point clients at ``operator.url``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: dict[str, ClientRules] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @classmethod
    async def start(cls, upstream: str) -> Operator:
        operator = cls(upstream)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", operator._handle)
        operator._session = aiohttp.ClientSession(auto_decompress=False)
        operator._runner = web.AppRunner(app)
        await operator._runner.setup()
        site = web.TCPSite(operator._runner, "127.0.0.1", 0)
        await site.start()
        operator.port = int(operator._runner.addresses[0][1])
        return operator

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for rules in self.rules.values():
            for socket in rules.sockets:
                with contextlib.suppress(Exception):
                    await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def target(self, token: str | None) -> ClientRules:
        """The rules for the client holding ``token`` (created empty)."""
        assert token is not None
        return self.rules.setdefault(token, ClientRules())

    async def inject(self, token: str | None, frame: dict[str, Any]) -> None:
        """Send a frame of the operator's making to that client's open connections."""
        for socket in self.target(token).sockets:
            await socket.send_str(json.dumps(frame))

    # Forwarding -----------------------------------------------------------------------

    @staticmethod
    def _token(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        assert self._session is not None
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            data = await upstream.read()
            status = upstream.status
            out_headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
        token = self._token(request)
        rules = self.rules.get(token) if token else None
        if rules is not None and rules.rewrite is not None and data and status < 300:
            with contextlib.suppress(ValueError):
                answer = json.loads(data)
                changed = rules.rewrite(request.method, request.path, answer)
                data = json.dumps(changed).encode()
        return web.Response(status=status, body=data, headers=out_headers)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        client = web.WebSocketResponse(max_msg_size=256 * 1024)
        await client.prepare(request)
        token = self._token(request)
        rules = self.target(token) if token else ClientRules()
        rules.sockets.append(client)
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("authorization", "origin")
        }
        url = self.upstream.replace("http", "ws", 1) + request.path_qs
        try:
            async with self._session.ws_connect(url, headers=headers, max_msg_size=0) as server:

                async def to_server() -> None:
                    async for message in client:
                        if message.type == WSMsgType.TEXT:
                            await server.send_str(message.data)
                    await server.close()

                async def to_client() -> None:
                    async for message in server:
                        if message.type != WSMsgType.TEXT:
                            continue
                        frame = json.loads(message.data)
                        outgoing = [frame] if rules.frames is None else await rules.frames(frame)
                        for item in outgoing:
                            await client.send_str(json.dumps(item))
                    await client.close()

                await asyncio.gather(to_server(), to_client())
        finally:
            with contextlib.suppress(ValueError):
                rules.sockets.remove(client)
        return client
