"""The per-event-loop services of a server process: the envelope store and the hub.

Both own connections bound to an event loop (a psycopg pool, a Redis subscription), so
they are created lazily inside the loop that uses them: one per server process, one
per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from chat.clock import SYSTEM_CLOCK, Clock
from chat.conf import relais_settings
from chat.fanout import FanoutHub
from chat.storage.base import MessageStore, StoredEnvelope
from chat.storage.orm import OrmMessageStore


@dataclass
class Runtime:
    store: MessageStore
    hub: FanoutHub
    clock: Clock
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.hub.close()
        await self.store.close()


_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = (
    weakref.WeakKeyDictionary()
)
_starting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def build_store(clock: Clock) -> MessageStore:
    connection = connections["default"]
    if connection.vendor == "postgresql":
        from chat.storage.postgres import PostgresMessageStore

        settings = relais_settings()
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("server_side_binding", None)
        params.pop("prepare_threshold", None)
        return PostgresMessageStore(
            conninfo=params,
            pool_size=settings.db_pool_size,
            batch_max=settings.write_batch_max,
            writers=settings.write_concurrency,
            timeout_seconds=settings.store_timeout_seconds,
            clock=clock,
        )
    return OrmMessageStore(clock=clock, timeout_seconds=relais_settings().store_timeout_seconds)


async def get_runtime() -> Runtime:
    """The runtime of the running event loop, started on first use."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is not None:
        return runtime
    lock = _starting.setdefault(loop, asyncio.Lock())
    async with lock:
        runtime = _runtimes.get(loop)
        if runtime is None:
            runtime = await start_runtime()
    return runtime


def install_runtime(runtime: Runtime) -> None:
    """Use ``runtime`` for the running loop (tests inject a clock or a store this way)."""
    _runtimes[asyncio.get_running_loop()] = runtime


async def start_runtime(*, clock: Clock = SYSTEM_CLOCK) -> Runtime:
    """Build and install a runtime for the running loop with the given clock."""
    settings = relais_settings()
    hub = FanoutHub(redis_url=settings.redis_url, channel_prefix=settings.redis_prefix)
    await hub.start()
    runtime = Runtime(store=build_store(clock), hub=hub, clock=clock)
    wire_faults(runtime)
    install_runtime(runtime)
    return runtime


def wire_faults(runtime: Runtime) -> None:
    """What keeps the live stream whole through faults (docs/architecture.md, "Faults"):
    an envelope committed after its sender was answered ``server_busy`` is published
    all the same, and when the fan-out may have missed events, every local connection
    catches up from the database."""
    from chat.delivery import catch_up_connections
    from chat.services.messages import publish_envelope

    def publish_late(envelope: StoredEnvelope) -> None:
        publish_envelope(hub=runtime.hub, envelope=envelope)

    def catch_up() -> None:
        task = asyncio.get_running_loop().create_task(
            catch_up_connections(runtime), name="relais-catch-up"
        )
        runtime.background.add(task)
        task.add_done_callback(runtime.background.discard)

    runtime.store.on_late_commit = publish_late
    runtime.hub.add_reconnect_listener(catch_up)


async def close_runtime() -> None:
    """Close the running loop's runtime (tests; process shutdown)."""
    runtime = _runtimes.pop(asyncio.get_running_loop(), None)
    if runtime is not None:
        await runtime.close()
