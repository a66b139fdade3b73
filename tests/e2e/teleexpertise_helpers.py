"""Helpers for the téléexpertise end-to-end tests: SDK clients with their
téléexpertise client, the organisation's archiver, events and frames with timeouts, and
the plaintext search over every table, Redis and the server log."""

from __future__ import annotations

import asyncio
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from channels.db import database_sync_to_async as sync_to_async
from django.db import connection
from PIL import Image

from client.archiver import ArchiverClient
from client.session import RelaisClient
from client.store import KeyStore
from client.teleexpertise.sdk import Received, TeleexpertiseClient
from tests.e2e.sdk import TIMEOUT, new_client
from tests.e2e.server import ServerProcess
from tests.teleexpertise.samples import account_keys

NURSE, DOCTOR, PHARMACIST = "810003456786", "810001987659", "810002765435"
ORGANISATION, ORGANISATION_NAME = "org:1750000123", "Centre de santé des Pentes"


async def te_client(server: ServerProcess, tmp_path: Path, national_id: str, name: str):
    session = await new_client(server.http_url, tmp_path, national_id, name)
    return session, TeleexpertiseClient(session)


async def archiver_client(server: ServerProcess, tmp_path: Path, token_file: Path):
    store = KeyStore.open(tmp_path / "archiver.store", "archive passphrase", n=2**10)
    archiver = ArchiverClient(server=server.http_url, store=store)
    await archiver.register_from_file(token_file)
    # An organisation's archiver bills nothing: its billing keys are a test secret's.
    return archiver, TeleexpertiseClient(archiver, account_key=account_keys(ORGANISATION))


async def next_event(te: TeleexpertiseClient) -> Received:
    """The next verified téléexpertise event from the other side."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = await te.session.messages.get()
            if message.own:
                continue
            received = await te.receive(message)
            if received is not None:
                return received


async def next_frame(session: RelaisClient) -> dict:
    return await asyncio.wait_for(session.teleexpertise_frames.get(), TIMEOUT)


def wound_photo() -> bytes:
    output = io.BytesIO()
    Image.new("RGB", (1200, 900), (170, 70, 60)).save(output, format="JPEG", quality=85)
    return output.getvalue()


def in_hours(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


async def plaintext_found(needles: list[str], log_paths: list[Path]) -> list[str]:
    """Where any needle (as UTF-8 or hex) appears: every row of every table, every Redis
    key and value, the server logs. Also proves the search sees data."""
    raw = []
    for text in needles:
        data = text.encode("utf-8")
        raw += [data, data.hex().encode()]
    found: list[str] = []

    def search_database() -> int:
        rows = 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            tables = [row[0] for row in cursor.fetchall()]
            assert "teleexpertise_billingact" in tables
            for table in tables:
                cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608 - catalog names
                for (row,) in cursor.fetchall():
                    rows += 1
                    data = row.encode("utf-8")
                    found.extend(f"{table}: {n!r}" for n in raw if n in data or n in data.lower())
        return rows

    assert await sync_to_async(search_database)() > 0
    import redis

    store = redis.Redis.from_url(os.environ["RELAIS_REDIS_URL"])
    for key in store.scan_iter(count=1000):
        dumped = store.dump(key) or b""
        found.extend(f"redis {key!r}" for n in raw if n in key or n in dumped)
    for path in log_paths:
        log = path.read_bytes()
        found.extend(f"log {path.name}: {n!r}" for n in raw if n in log)
    return found
