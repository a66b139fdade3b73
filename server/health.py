"""``/healthz``: can this process store and deliver a message right now?

It checks what the message path itself uses: the envelope store's own connection pool
(not only Django's connection, which a send never touches), the fan-out's subscription
to Redis, and the Django database connection the REST API and the ORM use. While the
store knows the database is away it answers at once, without waiting for a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse

from chat.runtime import get_runtime

logger = logging.getLogger(__name__)

_CHECK_TIMEOUT_SECONDS = 2


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok", "vendor": connection.vendor}


async def _check_store() -> dict[str, Any]:
    runtime = await get_runtime()
    return await runtime.store.check()


async def _check_fanout() -> dict[str, Any]:
    runtime = await get_runtime()
    return {"status": "ok", **(await runtime.hub.check())}


async def _run(name: str, check: Any) -> dict[str, Any]:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_SECONDS):
            result: dict[str, Any] = await check
    except Exception as error:
        logger.debug("health check %s failed: %s", name, type(error).__name__)
        return {"status": "error", "detail": type(error).__name__}
    return result


async def healthz(request: HttpRequest) -> JsonResponse:
    store, fanout, database = await asyncio.gather(
        _run("store", _check_store()),
        _run("fanout", _check_fanout()),
        _run("database", database_sync_to_async(_check_database)()),
    )
    healthy = all(part["status"] == "ok" for part in (store, fanout, database))
    response = JsonResponse(
        {
            "status": "ok" if healthy else "error",
            "store": store,
            "fanout": fanout,
            "database": database,
        },
        status=200 if healthy else 503,
    )
    # A 503 here is the answer, not a server error: a load balancer polling every second
    # during an outage must not write a log line each time (the outage is logged once).
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own marker
    return response
