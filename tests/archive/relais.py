"""A real Relais server process and the organisation's archiver for the archive tests:
members are SDK clients (``tests.e2e.sdk``), the archiver is the service's own client,
registered with the token file the operator's ``manage.py create_archiver`` writes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.service import ArchivingClient
from chat.services.organisations import do_create_archiver
from client.store import KeyStore
from tests.e2e.server import ServerProcess, production_env

NURSE, DOCTOR, PHYSIO = "810003456786", "810001987659", "810004123450"
STRUCTURE, ORGANISATION = "1750000123", "org:1750000123"
NAME = "Centre de santé des Pentes"
PASSPHRASE = "archive passphrase"


@pytest.fixture
def server_env(transactional_db: None) -> dict[str, str]:
    return production_env(RELAIS_DEBUG="1")


@pytest.fixture
def relais(
    server_env: dict[str, str], tmp_path: Path, practitioners: object
) -> Iterator[ServerProcess]:
    process = ServerProcess(env=server_env, log_path=tmp_path / "server.log")
    process.start()
    yield process
    process.stop()


def write_token_file(path: Path) -> Path:
    """What ``manage.py create_archiver --token-file`` writes (same service)."""
    created = do_create_archiver(structure_id=STRUCTURE, name=NAME, device_name="archiver")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(
            {
                "v": 1,
                "national_id": created.organisation.national_id,
                "device": created.device.pk,
                "token": created.token,
            },
            handle,
        )
    return path


async def registered_archiver(
    server: ServerProcess, directory: Path, token_file: Path
) -> ArchivingClient:
    store = KeyStore.open(directory / "archiver.store", PASSPHRASE, n=2**10)
    client = ArchivingClient(server=server.http_url, store=store)
    await client.register_from_file(token_file)
    return client
