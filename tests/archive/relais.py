"""A real Relais server process and the organisation's archiver for the archive tests:
members are SDK clients (``tests.e2e.sdk``), the archiver is the service's own client,
registered with the token file the operator's ``manage.py create_archiver`` writes."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async

from archive.outbox import Outbox
from archive.sealing import Sealer, outbox_key
from archive.service import ArchivingClient
from chat.services.organisations import do_create_archiver
from client.session import RelaisClient
from client.store import KeyStore
from client.teleexpertise.sdk import TeleexpertiseClient
from tests.e2e.server import ServerProcess, production_env
from tests.e2e.teleexpertise_helpers import in_hours, next_event, te_client
from tests.teleexpertise.samples import consent, patient

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


class Clock:
    """The service's and the outbox's clock, moved by the test."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = datetime.now(UTC) if start is None else start

    def __call__(self) -> datetime:
        return self.now


async def archiver_and_outbox(
    server: ServerProcess, tmp_path: Path, **options: Any
) -> tuple[ArchivingClient, Outbox]:
    """The organisation's archiver, registered from its token file, and its sealed
    outbox under ``tmp_path / "state"``, its traces signed with the archiver's identity
    (``options`` as ``Outbox`` takes them)."""
    token = await sync_to_async(write_token_file)(tmp_path / "archiver.json")
    client = await registered_archiver(server, tmp_path, token)
    outbox = Outbox(
        tmp_path / "state",
        Sealer(outbox_key(client.store.data)),
        author=f"{client.national_id}/{client.device_id}",
        **options,
    )
    return client, outbox


async def requested_teleexpertise(
    server: ServerProcess, tmp_path: Path
) -> tuple[RelaisClient, TeleexpertiseClient, RelaisClient, TeleexpertiseClient, int]:
    """The nurse asks the doctor for a téléexpertise the organisation archives; returns
    both members' sessions and téléexpertise clients and the room, once the doctor
    has the request."""
    nurse, nurse_te = await te_client(server, tmp_path, NURSE, "nurse")
    doctor, doctor_te = await te_client(server, tmp_path, DOCTOR, "doctor")
    sent = await nurse_te.request(
        requis=DOCTOR,
        patient=patient(),
        reason="Plaie qui s'aggrave",
        question="Faut-il changer de pansement ?",
        consent=consent(obtained_on=datetime.now(UTC).date()),
        deadline=in_hours(48),
        files=[],
        archiver=ORGANISATION,
    )
    room = sent.room_id
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    await next_event(doctor_te)
    return nurse, nurse_te, doctor, doctor_te, room
