"""Relais as deployed, on loopback: Debian's nginx with the shipped site file, the
processes of the shipped systemd units (migrations and deployment check, two uvicorn
server processes, the push worker, the PSC session checker) with the settings of the
shipped environment file (DEBUG off), PostgreSQL and Redis; the loopback Pro Santé
Connect provider, a real push service, and the Python SDK as the practitioners' devices.

Two practitioners log in through PSC, their devices land on different server processes,
chat end to end encrypted through nginx and Redis; the doctor's phone goes offline and
gets a content-free push. Then: metrics are served to a direct scraper and not through
nginx, every log is JSON with request ids, and no log holds a token, a login code, a
message or an envelope body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import requests
from channels.db import database_sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from chat.models import Envelope
from keylog.keys import write_seed_file
from push.vapid import generate_key
from tests.deploy.shape import (
    Nginx,
    Process,
    free_port,
    make_certificate,
    production_settings,
    unit_commands,
    wait_for_port,
)
from tests.e2e.sdk import next_message, token_client
from tests.e2e.server import production_env
from tests.identity.browser import Browser
from tests.identity.conftest import APP_URI, LoginRun
from tests.identity.psc_provider import CLIENT_SECRET, start_provider
from tests.push.receiver import PushReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NURSE, DOCTOR = "810003456786", "810001987659"
SECRET_TEXTS = ["Bonjour Docteur, plaie talon gauche J+3", "Vu, je passe demain", "Fièvre 39,2"]


def scrape(port: int) -> dict[str, float]:
    """One server process's metrics, read directly as Prometheus would."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


VAPID = generate_key()


@pytest.fixture
async def push_service(tmp_path):
    tls = tmp_path / "push-tls"
    tls.mkdir()
    service = PushReceiver(vapid_public_key=VAPID.public_key, tls_dir=tls)
    await service.start()
    yield service
    await service.close()


class Shape:
    """Everything started, to stop in reverse order."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    def stop(self) -> dict[str, int]:
        codes = {}
        for item in reversed(self.started):
            if isinstance(item, Process):
                codes[item.log_path.stem] = item.stop()
            else:
                item.stop()
        return codes


@pytest.fixture
def shape(practitioners, push_service, tmp_path, monkeypatch):
    stack = Shape()
    certificate, key = make_certificate(tmp_path)
    test_env = production_env()  # the test database and Redis prefix, as URLs
    nginx_dir = tmp_path / "nginx"
    server_ports = [free_port() for _ in range(2)]
    nginx = Nginx(nginx_dir, upstreams=server_ports, certificate=certificate, key=key)
    provider = start_provider(log_path=tmp_path / "psc.log", relais_origins=[nginx.origin])
    stack.started.append(provider)
    settings = production_settings(
        RELAIS_SECRET_KEY=secrets.token_urlsafe(50),
        RELAIS_ALLOWED_HOSTS="localhost,127.0.0.1",
        RELAIS_STATIC_ROOT=str(nginx_dir / "static"),
        RELAIS_DATABASE_URL=test_env["RELAIS_DATABASE_URL"],
        RELAIS_DB_CONN_MAX_AGE="0",
        RELAIS_REDIS_URL=test_env["RELAIS_REDIS_URL"],
        RELAIS_REDIS_PREFIX=test_env["RELAIS_REDIS_PREFIX"],
        RELAIS_PSC_CLIENT_ID="relais",
        RELAIS_PSC_CLIENT_SECRET=CLIENT_SECRET,
        # Behind nginx on a test port: the callbacks registered with the provider.
        RELAIS_PSC_REDIRECT_URI=f"{nginx.origin}/api/v1/auth/psc/callback",
        RELAIS_PSC_POST_LOGOUT_REDIRECT_URI=f"{nginx.origin}/api/v1/auth/psc/logged-out",
        RELAIS_PSC_CLIENT_REDIRECT_URIS=APP_URI,
        RELAIS_VAPID_PRIVATE_KEY=VAPID.private_key_text,
        RELAIS_ATTACHMENT_ROOT=str(tmp_path / "attachments"),
        RELAIS_DIRECTORY_CA_FILE="",
        RELAIS_DIRECTORY_DOWNLOAD_DIR=str(tmp_path / "directory"),
        RELAIS_KEYLOG_KEY_FILE=str(keylog_key_file(tmp_path)),
        extra={
            "RELAIS_PSC_ISSUER": provider.issuer,
            # The loopback push service stands for fcm.googleapis.com and the others.
            "RELAIS_PUSH_ENDPOINT_HOSTS": "127.0.0.1",
        },
    )
    # relais-migrate.service: migrations, then the deployment check, must pass.
    for command in unit_commands("relais-migrate.service"):
        done = Process(command, env=settings, log_path=tmp_path / "migrate.log").start()
        assert done.process is not None
        assert done.process.wait(timeout=120) == 0, done.log()[-3000:]
    assert "System check identified no issues" in done.log()
    servers = []
    for port in server_ports:
        (command,) = unit_commands("relais@.service", instance=str(port))
        server = Process(command, env=settings, log_path=tmp_path / f"relais@{port}.log")
        stack.started.append(server.start())
        servers.append(server)
    (worker_command,) = unit_commands("relais-push-worker.service")
    worker_env = {**settings, "SSL_CERT_FILE": str(push_service.cert_path)}
    worker = Process(worker_command, env=worker_env, log_path=tmp_path / "push-worker.log")
    stack.started.append(worker.start())
    (checker_command,) = unit_commands("relais-psc-sessions.service")
    checker = Process(checker_command, env=settings, log_path=tmp_path / "psc-sessions.log")
    stack.started.append(checker.start())
    for port, server in zip(server_ports, servers, strict=True):
        assert server.process is not None
        _wait_healthy(port, server)
    nginx.start()
    stack.started.append(nginx)
    # The devices trust the site's certificate as they would trust a public CA's
    # (httpx and websockets read SSL_CERT_FILE, requests REQUESTS_CA_BUNDLE).
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(variable, str(certificate))
    yield {
        "nginx": nginx,
        "provider": provider,
        "servers": dict(zip(server_ports, servers, strict=True)),
        "worker": worker,
        "checker": checker,
        "certificate": certificate,
        "settings": settings,
    }
    codes = stack.stop()
    assert codes[worker.log_path.stem] == 0, worker.log()[-3000:]
    assert codes[checker.log_path.stem] == 0, checker.log()[-3000:]


def _wait_healthy(port: int, server: Process) -> None:
    assert server.process is not None
    wait_for_port(port, server.process, server.log_path)
    # The first answer of a process starts its runtime: slow on a loaded machine.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
        health = json.loads(answer.read())
    assert health["status"] == "ok", health
    assert health["fanout"]["fanout"] == "redis"


def psc_login(shape: dict[str, Any], national_id: str, device_name: str) -> dict[str, Any]:
    """The whole PSC login through nginx: the app's PKCE pair, the provider's page, the
    callback, the one-time code redeemed for a device token."""
    browser = Browser(relais_origin=shape["nginx"].origin)
    browser.web.verify = str(shape["certificate"])
    run = LoginRun(shape["provider"], browser)
    back = run.run(login=national_id)
    assert back.location.startswith(f"{APP_URI}?code="), back
    code = back.query()["code"]
    answer = requests.post(
        f"{shape['nginx'].origin}/api/v1/auth/psc/token",
        json={"code": code, "code_verifier": run.verifier, "device_name": device_name},
        verify=str(shape["certificate"]),
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return {**answer.json(), "login_code": code, "verifier": run.verifier}


async def call(method: str, url: str, **options: Any) -> requests.Response:
    """An HTTP request from a thread (the push service shares the test's event loop)."""
    return await asyncio.to_thread(requests.request, method, url, timeout=10, **options)


async def test_login_chat_across_processes_and_push_through_nginx(shape, push_service, tmp_path):
    nginx: Nginx = shape["nginx"]
    origin = nginx.origin
    verify = str(shape["certificate"])
    ports = list(shape["servers"])

    # Production: no development login, no debug pages; plain HTTP is redirected.
    dev_login = await call("POST", f"{origin}/api/v1/auth/dev-login", json={}, verify=verify)
    assert dev_login.status_code == 404
    plain = await call("GET", f"http://127.0.0.1:{nginx.http_port}/api/v1/", allow_redirects=False)
    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://")

    nurse_login = await asyncio.to_thread(psc_login, shape, NURSE, "nurse-phone")
    doctor_login = await asyncio.to_thread(psc_login, shape, DOCTOR, "doctor-phone")

    nurse = await token_client(
        origin,
        tmp_path,
        national_id=NURSE,
        name="nurse",
        device=nurse_login["device"],
        token=nurse_login["token"],
    )
    doctor = await token_client(
        origin,
        tmp_path,
        national_id=DOCTOR,
        name="doctor",
        device=doctor_login["device"],
        token=doctor_login["token"],
    )
    # nginx's least_conn put the two WebSockets on different server processes.
    assert [scrape(port)["relais_websocket_connections"] for port in ports] == [1.0, 1.0]

    room = await nurse.create_room(kind="direct", members=[DOCTOR])
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    await nurse.send_text(room, SECRET_TEXTS[0])
    assert (await next_message(doctor)).text == SECRET_TEXTS[0]
    await doctor.send_text(room, SECRET_TEXTS[1])
    assert (await next_message(nurse)).text == SECRET_TEXTS[1]

    # The doctor's phone subscribes to Web Push through nginx, then goes offline.
    subscription = push_service.subscribe()
    answer = await call(
        "PUT",
        f"{origin}/api/v1/push/subscription",
        json=subscription.to_json(),
        headers={"Authorization": f"Bearer {doctor_login['token']}"},
        verify=verify,
    )
    assert answer.status_code == 201, answer.text
    await doctor.disconnect()
    seq = await nurse.send_text(room, SECRET_TEXTS[2])
    push = await push_service.next_push(wait_seconds=30)
    assert push.token == subscription.token
    assert json.loads(push.plaintext) == {"room": room, "seq": seq}
    assert push_service.rejections == []

    # Woken, the phone reconnects and decrypts what it missed.
    await doctor.connect()
    assert (await next_message(doctor)).text == SECRET_TEXTS[2]
    await nurse.close()
    await doctor.close()

    # Metrics: each process to a direct scraper; nothing through nginx.
    after = [scrape(port) for port in ports]
    assert sum(m["relais_acks_total"] for m in after) >= 3
    assert sum(m["relais_fanout_lag_seconds_count"] for m in after) >= 1
    assert sum(m["relais_store_batch_size_count"] for m in after) >= 1
    assert all("relais_push_jobs_waiting" in m for m in after)
    hidden = await call("GET", f"{origin}/metrics", verify=verify)
    assert hidden.status_code == 404
    assert "relais_" not in hidden.text

    bodies = await database_sync_to_async(
        lambda: [bytes(e.body) for e in Envelope.objects.filter(room_id=room)]
    )()
    assert len(bodies) >= 3
    _check_logs(shape, [nurse_login, doctor_login], bodies)


def _check_logs(shape: dict[str, Any], logins: list[dict[str, Any]], bodies: list[bytes]) -> None:
    nginx: Nginx = shape["nginx"]
    secrets_to_find = list(SECRET_TEXTS)
    for login in logins:
        secrets_to_find += [login["token"], login["login_code"], login["verifier"]]
    for body in bodies:
        secrets_to_find.append(base64.urlsafe_b64encode(body).decode().rstrip("=")[:40])
    logs = {name: process.log() for name, process in _processes(shape).items()}
    logs["nginx access"] = nginx.access_log()
    logs["nginx error"] = nginx.error_log()
    for name, text in logs.items():
        for secret in secrets_to_find:
            assert secret not in text, f"{name} log holds a secret: {secret[:12]}..."

    # Server logs: JSON lines; the request ids nginx logged are in the servers' logs.
    request_ids = set()
    for port, server in shape["servers"].items():
        entries = [json.loads(line) for line in server.log().splitlines() if line.strip()]
        assert entries, f"relais@{port} logged nothing"
        # nginx's $request_id names an HTTP request or, for /ws/, the WebSocket connection.
        request_ids |= {e.get("request_id") or e.get("connection_id") for e in entries}
        assert any("connection_id" in e for e in entries)
        # Requests are logged by path, never with their query string.
        assert not [e for e in entries if e["logger"] == "uvicorn.access"]
        assert not [e for e in entries if "?" in e.get("path", "")]
    access = [json.loads(line) for line in nginx.access_log().splitlines()]
    proxied = [e for e in access if e["upstream"]]
    assert proxied
    assert {e["request_id"] for e in proxied} <= request_ids
    assert not any("?" in e["path"] for e in access)


def _processes(shape: dict[str, Any]) -> dict[str, Process]:
    found = {f"relais@{port}": server for port, server in shape["servers"].items()}
    found["push worker"] = shape["worker"]
    found["psc sessions"] = shape["checker"]
    return found


def keylog_key_file(directory: Path) -> Path:
    """The log's seed file, as ``manage.py keylog_generate_key`` makes it."""
    path = directory / "keylog.key"
    write_seed_file(path)
    return path
