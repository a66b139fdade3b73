"""The ASGI layer around the application: request and connection ids, one log line per
HTTP request and per WebSocket connection, and the ``/metrics`` endpoint.

``/metrics`` is answered here, before Django, and only to a scraper that reaches the
process directly: a request that went through a proxy (it carries ``X-Forwarded-For``,
``X-Real-IP`` or ``Forwarded``) or that comes from an address outside
``RELAIS_METRICS_ALLOWED_NETWORKS`` gets a 404, as if the path did not exist. nginx's site
file does not route ``/metrics`` either (``deploy/nginx/relais.conf``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from observability import metrics
from observability.logs import REQUEST_CONTEXT

logger = logging.getLogger("relais.requests")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Application = Callable[[Scope, Receive, Send], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METRICS_PATH = "/metrics"
_PROXY_HEADERS = {b"x-forwarded-for", b"x-real-ip", b"forwarded"}
# nginx's $request_id (32 hex digits) or any similar id a trusted proxy passes on.
_INCOMING_ID = re.compile(rb"[A-Za-z0-9._-]{8,64}")


def parse_networks(values: Sequence[str]) -> list[Network]:
    """``RELAIS_METRICS_ALLOWED_NETWORKS`` entries (addresses or CIDR networks)."""
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _INCOMING_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return None


class ObservedApplication:
    """Wraps the ASGI application; see the module docstring."""

    def __init__(
        self,
        app: Application,
        *,
        metrics_networks: Sequence[Network],
        push_queue: Callable[[], Awaitable[tuple[int, int] | None]] | None = None,
    ) -> None:
        self.app = app
        self.metrics_networks = list(metrics_networks)
        self.push_queue = push_queue

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"] == METRICS_PATH:
                await self._metrics(scope, send)
                return
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        context = REQUEST_CONTEXT.set(("request_id", request_id))
        started = time.monotonic()
        status = 0

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            metrics.HTTP_REQUESTS.labels(f"{status // 100}xx" if status else "none").inc()
            # The path only: query strings may carry one-time codes. Health checks, polled
            # by nginx and monitoring every few seconds, only at DEBUG.
            logger.log(
                logging.DEBUG if scope.get("path") == "/healthz" else logging.INFO,
                "%s %s %s",
                scope.get("method", ""),
                scope.get("path", ""),
                status,
                extra={
                    "relais": {
                        "event": "http_request",
                        "method": scope.get("method", ""),
                        "path": scope.get("path", ""),
                        "status": status,
                        "duration_ms": round((time.monotonic() - started) * 1000, 2),
                    }
                },
            )
            REQUEST_CONTEXT.reset(context)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection_id = _incoming_id(scope) or uuid.uuid4().hex
        context = REQUEST_CONTEXT.set(("connection_id", connection_id))
        started = time.monotonic()
        metrics.WEBSOCKET_CONNECTIONS.inc()
        metrics.WEBSOCKET_CONNECTIONS_OPENED.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            metrics.WEBSOCKET_CONNECTIONS.dec()
            logger.info(
                "websocket closed after %.1f s",
                time.monotonic() - started,
                extra={
                    "relais": {
                        "event": "websocket_closed",
                        "duration_s": round(time.monotonic() - started, 3),
                    }
                },
            )
            REQUEST_CONTEXT.reset(context)

    def _may_scrape(self, scope: Scope) -> bool:
        if scope.get("method") not in {"GET", "HEAD"} or not self.metrics_networks:
            return False
        if any(name in _PROXY_HEADERS for name, _ in scope.get("headers", ())):
            return False
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.metrics_networks)

    async def _metrics(self, scope: Scope, send: Send) -> None:
        if not self._may_scrape(scope):
            await _answer(send, 404, b"text/plain; charset=utf-8", b"Not Found\n")
            return
        await self._refresh_push_queue()
        body = generate_latest(REGISTRY)
        await _answer(send, 200, CONTENT_TYPE_LATEST.encode("ascii"), body)

    async def _refresh_push_queue(self) -> None:
        if self.push_queue is None:
            return
        try:
            async with asyncio.timeout(2):
                depth = await self.push_queue()
        except Exception as error:
            logger.warning("reading the push queue for metrics failed: %s", type(error).__name__)
            return
        if depth is not None:
            metrics.PUSH_JOBS_WAITING.set(depth[0])
            metrics.PUSH_JOBS_PENDING.set(depth[1])


async def _answer(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def redis_push_queue(
    redis_url: str, stream: str, group: str
) -> Callable[[], Awaitable[tuple[int, int]]]:
    """Reads the push stream's depth: (entries no worker read yet, entries read and not
    acknowledged). Before any worker created its group, every entry is waiting."""

    async def read() -> tuple[int, int]:
        import redis.asyncio as redis_asyncio

        client = redis_asyncio.Redis.from_url(redis_url, socket_connect_timeout=1)
        try:
            try:
                groups = await client.xinfo_groups(stream)
            except Exception as error:
                if "no such key" in str(error).lower():
                    return 0, 0
                raise
            for info in groups:
                name = info.get("name")
                if name in {group, group.encode()}:
                    return int(info.get("lag") or 0), int(info.get("pending") or 0)
            return int(await client.xlen(stream)), 0
        finally:
            await client.aclose()

    return read
