"""The embedded first-run setup (what ``make run`` starts): SQLite, in-process fan-out,
demo practitioners and the development login, on a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.client import WsClient
from tests.e2e.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e


def post(url: str, payload: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict = json.loads(response.read())
        return result


@pytest.fixture
def embedded_server(tmp_path: Path):
    env = {"RELAIS_DEBUG": "1", "RELAIS_DATABASE_URL": f"sqlite:///{tmp_path}/relais.sqlite3"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**clean, **env},
            check=True,
            capture_output=True,
            timeout=120,
        )
    # Daphne, as ``make run`` (runserver) serves the embedded default.
    server = ServerProcess(env=env, log_path=tmp_path / "server.log", kind="daphne")
    server.start()
    yield server
    server.stop()


async def test_embedded_default_serves_a_conversation(embedded_server):
    health = embedded_server.wait_healthy()
    assert health["database"]["vendor"] == "sqlite"
    assert health["fanout"]["fanout"] == "in-process"
    base = embedded_server.http_url
    nurse = post(f"{base}/api/v1/auth/dev-login", {"national_id": "810003456786"})
    pharmacist = post(f"{base}/api/v1/auth/dev-login", {"national_id": "810002765435"})
    room = post(
        f"{base}/api/v1/rooms", {"kind": "direct", "members": ["810002765435"]}, nurse["token"]
    )

    sender = WsClient(embedded_server.ws_url, nurse["token"])
    receiver = WsClient(embedded_server.ws_url, pharmacist["token"])
    for client in (sender, receiver):
        await client.connect()
        await client.sync({})
    await sender.send({"type": "send", "room": room["id"], "id": "q1", "body": "cXVlc3Rpb24"})
    assert (await sender.receive_type("ack"))["seq"] == 1
    message = await receiver.receive_type("message")
    assert (message["seq"], message["body"]) == (1, "cXVlc3Rpb24")
    await sender.close()
    await receiver.close()
