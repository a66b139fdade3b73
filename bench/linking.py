"""Linking a new device to a practitioner with many rooms: ``python -m bench.linking``.

A pharmacist's phone is in ``--rooms`` care-team rooms (each with a nurse and two messages).
A laptop asks to be linked, the phone approves, and the laptop — taking the identity
key, certifying itself, adding itself to every room (one signed ``add_device`` each) and
receiving the history keys — ends up reading every room's history. Measured: the time
from the phone's approval to the laptop being in every room, and to the laptop having
decrypted every past message. One server process (uvicorn, DEBUG on for the development
login) on a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from client import registration
from client.session import RelaisClient
from client.store import KeyStore

NURSE, PHARMACIST = (
    "810003456786",
    "810002765435",
)  # the pharmacist: seed_demo gives the doctor an identity
PASSPHRASE = "bench passphrase"  # noqa: S105 (the bench's throwaway key stores)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _prepare(database_url: str, work: Path) -> dict[str, str]:
    """A fresh database with the demo practitioners; the server's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    env.update(
        RELAIS_DEBUG="1",
        RELAIS_DATABASE_URL=database_url,
        RELAIS_ALLOWED_HOSTS="127.0.0.1",
        RELAIS_LOG_LEVEL="WARNING",
        RELAIS_KEYLOG_KEY_FILE=str(work / "keylog.key"),
        RELAIS_RATE_USER="1000000/minute",
        RELAIS_RATE_SEND_DEVICE="1000000/minute",
        RELAIS_RATE_KEYLOG_IP="1000000/minute",
        RELAIS_RATE_KEYLOG_LOOKUP_DEVICE="1000000/minute",
    )
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(["psql", admin, "-q", "-c", sql], check=True)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "keylog_generate_key", str(work / "keylog.key")], env=env, check=True)
    for command in (["migrate", "--noinput", "-v", "0"], ["seed_demo"]):
        subprocess.run([*manage, *command], env=env, check=True, stdout=subprocess.DEVNULL)
    return env


def _start(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "server.asgi:application", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 (loopback)
                return process, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)  # polling for the port to open; nothing to wait on
    process.kill()
    raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")


def _client(url: str, work: Path, name: str) -> RelaisClient:
    return RelaisClient(
        server=url, store=KeyStore.open(work / f"{name}.store", PASSPHRASE, n=2**10)
    )


async def _run(url: str, work: Path, rooms: int) -> dict[str, float]:
    nurse, phone = _client(url, work, "nurse"), _client(url, work, "phone")
    await nurse.register_dev(NURSE)
    await phone.register_dev(PHARMACIST)
    await nurse.connect()
    await phone.connect()
    started = time.perf_counter()
    for number in range(rooms):
        room = await phone.create_room(kind="care_team", members=[NURSE])
        await phone.send_text(room, f"salon {number} : premier message")
        await phone.send_text(room, f"salon {number} : second message")
    setup = time.perf_counter() - started

    laptop = _client(url, work, "laptop")
    login = await laptop.api.dev_login(PHARMACIST, "laptop")
    pending = await registration.start_link(
        laptop, token=login["token"], device=login["device"], national_id=PHARMACIST
    )

    async def yes(device: int, name: str) -> bool:
        return True

    approved = time.perf_counter()
    await registration.approve_link(phone, pending.code.short_code, confirm=yes)
    await registration.finish_link(laptop, pending)
    joined = time.perf_counter() - approved
    await laptop.connect()
    read = 0
    async with asyncio.timeout(600):
        while read < 2 * rooms:
            message = await laptop.messages.get()
            read += not message.own or message.sender[1] != laptop.device_id
    readable = time.perf_counter() - approved
    for client in (nurse, phone, laptop):
        await client.close()
    return {"setup": setup, "joined": joined, "readable": readable, "read": float(read)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "RELAIS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/relais_link_bench"
        ),
    )
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="relais-linking-"))
    try:
        env = _prepare(args.database_url, work)
        server, url = _start(env, work / "server.log")
        try:
            result = asyncio.run(_run(url, work, args.rooms))
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.rooms} rooms with 2 messages each, made in {result['setup']:.1f} s")
    print(f"link approved -> laptop in every room:       {result['joined']:.2f} s")
    print(
        f"link approved -> laptop read all {int(result['read'])} messages: "
        f"{result['readable']:.2f} s"
    )


if __name__ == "__main__":
    main()
