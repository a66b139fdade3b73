from __future__ import annotations

import pytest
from django.db import connection
from django.test import AsyncClient

from chat.clock import ManualClock
from chat.runtime import Runtime, build_store, install_runtime
from chat.storage.postgres import PostgresMessageStore
from tests.e2e.server import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fanout_mode")]


async def test_healthz_reports_the_store_the_fanout_and_the_database(runtime, fanout_mode):
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"status": "ok", "vendor": "postgresql"}
    assert body["store"]["status"] == "ok"
    assert body["store"]["pool"]["size"] >= 1
    assert body["fanout"]["fanout"] == ("redis" if fanout_mode == "redis" else "in-process")


@pytest.mark.parametrize("path", ["/api/", "/api/v1/"])
async def test_the_api_root_says_where_things_are(path):
    response = await AsyncClient().get(path)
    assert response.status_code == 200
    body = response.json()
    assert (body["schema"], body["docs"], body["websocket"]) == (
        "/api/v1/schema",
        "/api/v1/docs",
        "/ws/v1/",
    )
    assert (await AsyncClient().get(body["schema"])).status_code == 200


async def test_healthz_fails_when_the_message_store_cannot_reach_its_database(
    runtime: Runtime, clock: ManualClock
):
    """Django's own connection is fine; the pool sends go through is not: 503 at once."""
    dead = PostgresMessageStore(
        conninfo={**_conninfo(), "port": free_port()},
        pool_size=2,
        batch_max=16,
        writers=1,
        timeout_seconds=10,
        clock=clock,
    )
    install_runtime(Runtime(store=dead, hub=runtime.hub, clock=clock))
    try:
        response = await AsyncClient().get("/healthz")
    finally:
        install_runtime(runtime)
        await dead.close()
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["status"] == "ok"
    assert body["store"] == {"status": "error", "detail": "unavailable", "for_seconds": 0.0}


def _conninfo() -> dict:
    store = build_store(ManualClock())
    assert isinstance(store, PostgresMessageStore)
    params = connection.get_connection_params()
    return {key: params[key] for key in ("dbname", "user", "host") if key in params}
