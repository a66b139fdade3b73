"""WebSocket handshake authentication from an ``Authorization: Bearer`` header.

Browsers cannot set that header; they authenticate with an ``auth`` frame instead
(docs/protocol.md §1). Tokens are never read from the query string, which ends up in
access logs.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from chat.outages import UNAVAILABLE
from chat.services.devices import authenticate_token

Scope = dict[str, Any]


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class DeviceTokenAuthMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        scope = dict(scope)
        scope["relais_identity"] = None
        scope["relais_auth_failed"] = False
        scope["relais_auth_unavailable"] = False
        token = bearer_token(scope)
        if token is not None:
            try:
                identity = await database_sync_to_async(authenticate_token)(token=token)
            except UNAVAILABLE:
                # The database is away: the connection says so (server_busy, 1013) rather
                # than the handshake failing with an HTTP 500.
                scope["relais_auth_unavailable"] = True
            else:
                scope["relais_identity"] = identity
                scope["relais_auth_failed"] = identity is None
        return await self.app(scope, receive, send)
