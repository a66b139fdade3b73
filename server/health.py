"""``/healthz``: is the database reachable, does the channel layer carry a message?"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

from chat.runtime import get_runtime

logger = logging.getLogger(__name__)


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok", "vendor": connection.vendor}


async def _check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        return {"status": "error", "detail": "no channel layer configured"}
    channel = await layer.new_channel("health.")
    await layer.send(channel, {"type": "health.check"})
    message = await asyncio.wait_for(layer.receive(channel), timeout=2)
    status = "ok" if message.get("type") == "health.check" else "error"
    return {"status": status, "backend": type(layer).__name__}


async def _check_fanout() -> dict[str, Any]:
    runtime = await get_runtime()
    return {"status": "ok", **(await asyncio.wait_for(runtime.hub.check(), timeout=2))}


async def _run(name: str, check: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await check
    except Exception as error:
        logger.warning("health check %s failed: %s", name, type(error).__name__)
        return {"status": "error", "detail": type(error).__name__}
    return result


async def healthz(request: HttpRequest) -> JsonResponse:
    database = await _run("database", database_sync_to_async(_check_database)())
    layer = await _run("channel_layer", _check_channel_layer())
    fanout = await _run("fanout", _check_fanout())
    healthy = all(part["status"] == "ok" for part in (database, layer, fanout))
    return JsonResponse(
        {
            "status": "ok" if healthy else "error",
            "database": database,
            "channel_layer": layer,
            "fanout": fanout,
        },
        status=200 if healthy else 503,
    )
