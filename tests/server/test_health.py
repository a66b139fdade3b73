from __future__ import annotations

import pytest
from django.test import AsyncClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fanout_mode")]


async def test_healthz_reports_database_and_channel_layer(runtime, fanout_mode):
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"status": "ok", "vendor": "postgresql"}
    assert body["channel_layer"]["status"] == "ok"
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
