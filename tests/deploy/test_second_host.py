"""What a second host needs for attachments (docs/deployment.md, "second host"): two
server processes with production settings that share only PostgreSQL, Redis and an S3
bucket — no memory, no files. A file uploaded through one process is downloaded and
decrypted through the other; the bucket holds the ciphertext and nothing else holds it;
the retention purge, run as its systemd unit runs it, deletes it from the bucket.

The bucket is served by moto's server mode: an emulator of the S3 API over real HTTP on
loopback (the same requests django-storages and boto3 send to a production store), not a
production object store. Nothing in Relais knows it is an emulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from attachments.models import Attachment
from tests.deploy.shape import unit_commands
from tests.e2e.sdk import next_message, token_client
from tests.e2e.server import ROOT, ServerProcess, free_port, production_env, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NURSE, DOCTOR = "810003456786", "810001987659"
REGION = "eu-west-3"
BUCKET = "relais-attachments"
# Test credentials for the emulator: it accepts any, and a production store's are never
# in a file of the repository.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "relais-test-key",
    "AWS_SECRET_ACCESS_KEY": "relais-test-secret",
}
PART_BYTES = 256 * 1024
# Marks the plaintext: long enough that ciphertext cannot hold it by chance.
MARKER = b"Compte rendu confidentiel: plaie talon gauche, patient 1 80 05 75 112 042 17"


@dataclass(frozen=True)
class Bucket:
    endpoint_url: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def objects(self) -> dict[str, bytes]:
        client = self.client()
        listing = client.list_objects_v2(Bucket=BUCKET)
        return {
            item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            for item in listing.get("Contents", [])
        }


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[Bucket]:
    """moto's S3 server in a process of its own on a free loopback port, with one
    private bucket in a European region."""
    port = free_port()
    with (tmp_path / "moto.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
        store = Bucket(endpoint_url=f"http://127.0.0.1:{port}")
        store.client().create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield store
    finally:
        process.terminate()
        process.wait(timeout=10)


def s3_env(bucket: Bucket, host: Path) -> dict[str, str]:
    """A host's environment: production settings on the shared database, Redis and
    bucket; its own temporary directory and (unused) attachment root, to search after."""
    (host / "tmp").mkdir(parents=True)
    return production_env(
        RELAIS_SECURE_SSL_REDIRECT="0",  # plain HTTP on loopback; nginx does TLS
        RELAIS_ATTACHMENT_STORAGE="s3",
        RELAIS_ATTACHMENT_S3_BUCKET=BUCKET,
        RELAIS_ATTACHMENT_S3_ENDPOINT_URL=bucket.endpoint_url,
        RELAIS_ATTACHMENT_S3_REGION=REGION,
        RELAIS_ATTACHMENT_ROOT=str(host / "attachments"),
        RELAIS_ATTACHMENT_PART_BYTES=str(PART_BYTES),
        TMPDIR=str(host / "tmp"),
        **CREDENTIALS,
    )


@pytest.fixture
def hosts(bucket: Bucket, practitioners: Any, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started = []
    try:
        for name in ("host-a", "host-b"):
            process = ServerProcess(
                env=s3_env(bucket, tmp_path / name), log_path=tmp_path / f"{name}.log"
            )
            process.start()
            started.append(process)
        yield started
    finally:
        for process in started:
            process.stop()


def files_under(directory: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def _age_blob(message_id: str, days: int) -> None:
    """As if the blob had completed ``days`` ago (the retention period is counted from
    there)."""
    updated = Attachment.objects.filter(message_id=message_id).update(
        completed_at=timezone.now() - timedelta(days=days)
    )
    assert updated == 1


@pytest.fixture
async def devices(
    hosts: list[ServerProcess], practitioners: Any, device_token: Any, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """The nurse's phone on host A, the GP's tablet on host B."""
    opened = {}
    for who, name, host in (("nurse", "phone", hosts[0]), ("doctor", "tablet", hosts[1])):
        practitioner = practitioners[who]
        device, token = await database_sync_to_async(device_token)(practitioner, name)
        opened[who] = await token_client(
            host.http_url,
            tmp_path / "devices",
            national_id=practitioner.national_id,
            name=f"{who}-{name}",
            device=device,
            token=token,
        )
    yield opened
    for client in opened.values():
        await client.close()


async def test_a_file_uploaded_through_one_host_is_read_through_the_other_from_s3(
    bucket: Bucket, hosts: list[ServerProcess], devices: dict[str, Any], tmp_path: Path
) -> None:
    nurse, doctor = devices["nurse"], devices["doctor"]
    host_a, host_b = hosts
    assert (nurse.server, doctor.server) == (host_a.http_url, host_b.http_url)
    room = await nurse.create_room(kind="direct", members=[DOCTOR])
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)

    # Several parts, so that assembling the blob from parts runs on the object store.
    plaintext = MARKER + secrets.token_bytes(3 * PART_BYTES) + MARKER
    sent = await nurse.send_file(
        room, plaintext, name="compte-rendu.bin", mime="application/octet-stream"
    )
    descriptor = sent.descriptor
    assert descriptor.ciphertext_size > 2 * PART_BYTES

    # Host B serves the blob that host A stored: the GP's device decrypts it.
    message = await next_message(doctor)
    assert message.attachment == descriptor
    saved = await doctor.save_attachment(message.attachment, tmp_path / "inbox")
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(plaintext).digest()

    # The bucket holds exactly one object, the blob: the announced ciphertext, no parts.
    objects = await asyncio.to_thread(bucket.objects)
    blob_key = f"blobs/{descriptor.blob[:2]}/{descriptor.blob}"
    assert list(objects) == [blob_key]
    blob = objects[blob_key]
    assert len(blob) == descriptor.ciphertext_size
    assert hashlib.sha256(blob).hexdigest() == descriptor.sha256
    assert MARKER not in blob
    assert plaintext[len(MARKER) : len(MARKER) + 4096] not in blob

    # Neither host wrote it, or its parts, to its own disk.
    for host in ("host-a", "host-b"):
        local = files_under(tmp_path / host)
        assert [path for path, data in local.items() if blob[:4096] in data] == []
        assert [path for path, data in local.items() if MARKER in data] == []
    assert not (tmp_path / "host-a" / "attachments").exists()
    assert not (tmp_path / "host-b" / "attachments").exists()

    # A year on, the purge (on one host, as its systemd timer runs it) deletes the blob
    # from the bucket.
    await database_sync_to_async(_age_blob)(sent.message_id, days=366)
    (command,) = unit_commands("relais-purge-attachments.service")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    purge = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env={**clean, **host_a.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        output, errors = await purge.communicate()
    assert purge.returncode == 0, errors.decode()
    assert "expired: 1," in output.decode()
    assert await asyncio.to_thread(bucket.objects) == {}
    assert await database_sync_to_async(Attachment.objects.count)() == 0
