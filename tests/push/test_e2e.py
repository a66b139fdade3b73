"""End to end: a real server process, a real ``push_worker`` process, PostgreSQL, Redis,
real WebSocket clients, and a real push service over HTTPS that checks VAPID and
decrypts what a browser would receive. Production settings (``RELAIS_DEBUG=0``)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import redis

from push.jobs import stream_key
from tests.e2e.client import WsClient
from tests.e2e.server import ROOT, ServerProcess, production_env
from tests.push.conftest import SUBJECT
from tests.push.receiver import PushReceiver
from tests.signed_rooms import create_room as do_create_room

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ENVELOPE = b"\x8a\x01ciphertext of: plaie du talon, J3, photo jointe"


class WorkerProcess:
    """``manage.py push_worker`` as systemd would run it."""

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "push_worker"],
                cwd=ROOT,
                env={**clean, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                return -9
        return self.process.returncode


@pytest.fixture
async def push_service(vapid_key, tmp_path):
    service = PushReceiver(vapid_public_key=vapid_key.public_key, tls_dir=tmp_path)
    await service.start()
    yield service
    await service.close()


@pytest.fixture
def stack(push_service, vapid_key, tmp_path):
    """One server process and one push worker, in production mode."""
    env = production_env(
        RELAIS_VAPID_PRIVATE_KEY=vapid_key.private_key_text,
        RELAIS_VAPID_SUBJECT=SUBJECT,
        # The local push service stands for fcm.googleapis.com and the others.
        RELAIS_PUSH_ENDPOINT_HOSTS="127.0.0.1",
    )
    server = ServerProcess(env=env, log_path=tmp_path / "server.log")
    server.start()
    worker = WorkerProcess(
        env={**env, "SSL_CERT_FILE": str(push_service.cert_path)},
        log_path=tmp_path / "worker.log",
    )
    worker.start()
    yield server
    exit_code = worker.stop()
    server.stop()
    with redis.Redis.from_url(env["RELAIS_REDIS_URL"]) as client:
        client.delete(stream_key(env["RELAIS_REDIS_PREFIX"]))
    worker_log = worker.log_path.read_text()
    assert exit_code == 0, worker_log[-3000:]
    # Endpoints are capability URLs: never in the logs.
    for token in push_service.subscriptions:
        assert token not in worker_log
        assert token not in server.log_path.read_text()


@pytest.fixture
def people(practitioners, device_token):
    room = do_create_room(
        creator=practitioners["nurse"],
        kind="care_team",
        member_ids=[practitioners["doctor"].national_id],
    )
    return room.pk, {
        "nurse": device_token(practitioners["nurse"], "phone")[1],
        "doctor_phone": device_token(practitioners["doctor"], "phone")[1],
        "doctor_tablet": device_token(practitioners["doctor"], "tablet")[1],
    }


async def subscribe_over_rest(server: ServerProcess, token: str, push_service: PushReceiver):
    browser = push_service.subscribe()
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Forwarded-Proto": "https",  # as nginx says in production
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.http_url}/api/v1/push/vapid-key", headers=headers) as key:
            assert (await key.json())["public_key"] == push_service.vapid_public_key
        async with session.put(
            f"{server.http_url}/api/v1/push/subscription", json=browser.to_json(), headers=headers
        ) as response:
            assert response.status == 201, await response.text()
    return browser


def envelope_text() -> str:
    return base64.urlsafe_b64encode(ENVELOPE).decode().rstrip("=")


async def test_offline_device_gets_a_content_free_push_then_the_message(
    stack, push_service, people
):
    server = stack
    room, tokens = people
    doctor_browser = await subscribe_over_rest(server, tokens["doctor_phone"], push_service)
    nurse = WsClient(server.ws_url, tokens["nurse"])
    await nurse.connect()
    await nurse.sync({})

    # The doctor's phone is offline. The nurse sends.
    await nurse.send({"type": "send", "room": room, "id": "wound-1", "body": envelope_text()})
    ack = await nurse.receive_type("ack")

    push = await push_service.next_push(wait_seconds=30)
    assert push.token == doctor_browser.token
    # What the browser decrypts: the room and the sequence number, nothing more.
    assert json.loads(push.plaintext) == {"room": room, "seq": ack["seq"]}
    assert set(json.loads(push.plaintext)) == {"room", "seq"}
    assert ENVELOPE not in push.plaintext
    assert b"wound" not in push.plaintext
    assert push.claims["aud"] == push_service.origin  # https://127.0.0.1:<port>
    assert push.claims["sub"] == SUBJECT
    assert push_service.rejections == []

    # Woken up, the phone connects, catches up and decrypts the envelope itself.
    doctor = WsClient(server.ws_url, tokens["doctor_phone"])
    await doctor.connect()
    missed = await doctor.sync({room: 0})
    assert [(m["seq"], m["id"]) for m in missed] == [(1, "wound-1")]
    assert base64.urlsafe_b64decode(missed[0]["body"] + "==") == ENVELOPE
    await nurse.close()
    await doctor.close()


async def test_a_connected_device_gets_no_push(stack, push_service, people):
    server = stack
    room, tokens = people
    phone_browser = await subscribe_over_rest(server, tokens["doctor_phone"], push_service)
    tablet_browser = await subscribe_over_rest(server, tokens["doctor_tablet"], push_service)
    phone = WsClient(server.ws_url, tokens["doctor_phone"])
    await phone.connect()
    await phone.sync({})
    nurse = WsClient(server.ws_url, tokens["nurse"])
    await nurse.connect()
    await nurse.sync({})

    for number in (1, 2):
        await nurse.send(
            {"type": "send", "room": room, "id": f"m{number}", "body": envelope_text()}
        )
        assert (await nurse.receive_type("ack"))["seq"] == number
        assert (await phone.receive_type("message"))["seq"] == number
        # The offline tablet is woken; the worker decided for both devices of the
        # doctor in the same round, so the phone's "no push" is final by now.
        push = await push_service.next_push(wait_seconds=30)
        assert (push.token, push.json()) == (tablet_browser.token, {"room": room, "seq": number})
    assert push_service.pushes_for(phone_browser) == []
    assert push_service.requests[phone_browser.token] == 0
    await nurse.close()
    await phone.close()
