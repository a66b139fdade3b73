"""The whole login on real processes: a Relais server (production settings), the
loopback PSC provider, a real HTTP "browser" and a real WebSocket client."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.client import WsClient
from tests.e2e.server import ServerProcess, free_port, production_env
from tests.identity.browser import Browser
from tests.identity.conftest import APP_URI, LoginRun
from tests.identity.psc_provider import CLIENT_SECRET, start_provider

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def call(url: str, payload: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_psc_login_on_a_real_server_gives_a_working_device_token(
    practitioners, tmp_path: Path
):
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    provider = start_provider(log_path=tmp_path / "psc.log", relais_origins=[origin])
    env = production_env(
        RELAIS_SECURE_SSL_REDIRECT="0",
        RELAIS_PSC_ISSUER=provider.issuer,
        RELAIS_PSC_CLIENT_ID="relais",
        RELAIS_PSC_CLIENT_SECRET=CLIENT_SECRET,
        RELAIS_PSC_CLIENT_REDIRECT_URIS=APP_URI,
    )
    server = ServerProcess(env=env, log_path=tmp_path / "server.log", port=port)
    try:
        server.start()
        run = LoginRun(provider, Browser(relais_origin=origin))
        back = run.run(login="810003456786")
        assert back.location.startswith(f"{APP_URI}?code="), back
        status, body = call(
            f"{origin}/api/v1/auth/psc/token",
            {"code": back.query()["code"], "code_verifier": run.verifier},
        )
        assert status == 201, body
        ws = WsClient(server.ws_url, body["token"])
        ready = await ws.connect()
        assert ready["type"] == "ready"
        await ws.sync({})
        status, session = call(f"{origin}/api/v1/auth/psc/session?check=1", token=body["token"])
        assert (status, session["practitioner"]) == (200, "810003456786")
        assert ws.ws is not None
        await ws.ws.close()
    finally:
        server.stop()
        provider.stop()
