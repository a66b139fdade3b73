"""The wound-photo path end to end: real server processes, PostgreSQL, Redis, a real
WebSocket message and real HTTP transfers.

The message that carries the descriptor is sealed here with a room key both test devices
hold (AES-256-GCM). It stands in for the end-to-end envelope of the SDK, so that, as in
production, the server never sees the descriptor's file key.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import os
import threading
import uuid
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image, UnidentifiedImageError

from attachments.models import Attachment
from chat.models import Envelope
from client.attachments import (
    AttachmentApi,
    AttachmentError,
    AttachmentServerError,
    descriptor_from_dict,
    receive_attachment,
    receive_thumbnail,
    send_attachment,
)
from client.attachments.stream import CIPHER_CHUNK_BYTES, HEADER_BYTES
from tests.attachments.photos import SECRETS, phone_jpeg, red_corner
from tests.attachments.test_images import assert_no_metadata
from tests.e2e.client import WsClient
from tests.signed_rooms import create_room as do_create_room

pytestmark = pytest.mark.e2e

ROOM_KEY = AESGCM(bytes(range(32)))  # stands in for the room's end-to-end keys
NO_WAIT = (0.0, 0.0, 0.0)


def seal(content: dict) -> str:
    nonce = os.urandom(12)
    sealed = nonce + ROOM_KEY.encrypt(nonce, json.dumps(content).encode(), None)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_sealed(body: str) -> dict:
    sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    opened: dict = json.loads(ROOM_KEY.decrypt(sealed[:12], sealed[12:], None))
    return opened


@pytest.fixture
def people(practitioners, device_token):
    room = do_create_room(
        creator=practitioners["nurse"],
        kind="direct",
        member_ids=[practitioners["doctor"].national_id],
    )
    return {
        "room": room.pk,
        "nurse": device_token(practitioners["nurse"], "phone")[1],
        "doctor": device_token(practitioners["doctor"], "tablet")[1],
        "outsider": device_token(practitioners["physio"], "phone")[1],
    }


def blob_files(store: Path) -> list[Path]:
    return sorted(path for path in (store / "blobs").rglob("*") if path.is_file())


def libraries_loaded_by(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_a_wound_photo_goes_from_the_nurse_to_the_doctor(attachment_server, people, tmp_path):
    server = attachment_server.current
    original = phone_jpeg(3000, 2000, orientation=6, grain=True)
    message_id = str(uuid.uuid4())
    progress: list[tuple[int, int]] = []

    async with AttachmentApi(
        base_url=server.http_url, token=people["nurse"], retry_delays=NO_WAIT
    ) as nurse_api:
        descriptor = await send_attachment(
            nurse_api,
            room=people["room"],
            message_id=message_id,
            source=original,
            mime="image/jpeg",
            name="plaie-jambe.jpg",
            progress=lambda done, total: progress.append((done, total)),
        )
    assert descriptor.thumbnail is not None
    total = descriptor.ciphertext_size + descriptor.thumbnail.ciphertext_size
    assert progress[-1] == (total, total)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert descriptor.ciphertext_size > 2 * CIPHER_CHUNK_BYTES  # several AEAD chunks

    nurse = WsClient(server.ws_url, people["nurse"])
    await nurse.connect()
    content = {"type": "attachment", "attachment": descriptor.to_dict()}
    await nurse.send(
        {"type": "send", "room": people["room"], "id": message_id, "body": seal(content)}
    )
    assert (await nurse.receive_type("ack"))["id"] == message_id
    await nurse.close()

    # The doctor's device comes online, catches up, opens the message, fetches the photo.
    doctor = WsClient(server.ws_url, people["doctor"])
    await doctor.connect()
    [message] = await doctor.sync({people["room"]: 0})
    await doctor.close()
    received = descriptor_from_dict(open_sealed(message["body"])["attachment"])
    assert received == descriptor
    assert received.thumbnail is not None
    destination = tmp_path / "inbox" / "plaie.jpg"
    destination.parent.mkdir()
    async with AttachmentApi(
        base_url=server.http_url, token=people["doctor"], retry_delays=NO_WAIT
    ) as doctor_api:
        fetched: list[tuple[int, int]] = []
        await receive_attachment(
            doctor_api,
            received,
            destination,
            progress=lambda done, size: fetched.append((done, size)),
        )
        thumbnail = await receive_thumbnail(doctor_api, received)
    assert fetched[-1] == (received.ciphertext_size, received.ciphertext_size)
    assert len(fetched) > 1  # reported as the bytes stream in, not once at the end

    photo = destination.read_bytes()
    image = Image.open(io.BytesIO(photo))
    assert red_corner(image) == "top-right"  # upright: EXIF orientation 6 applied
    assert image.size == (received.width, received.height) == (1365, 2048)
    assert_no_metadata(photo)
    assert_no_metadata(thumbnail)
    assert max(Image.open(io.BytesIO(thumbnail)).size) == 320
    assert leftovers(destination.parent) == ["plaie.jpg"]

    # What the server stores is exactly the announced ciphertext, and nothing readable.
    stored = {path.name: path.read_bytes() for path in blob_files(attachment_server.store)}
    assert set(stored) == {received.blob, received.thumbnail.blob}
    assert hashlib.sha256(stored[received.blob]).hexdigest() == received.sha256
    assert hashlib.sha256(stored[received.thumbnail.blob]).hexdigest() == received.thumbnail.sha256
    for blob in stored.values():
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(blob))
        assert not blob.startswith(b"\xff\xd8")  # no JPEG start of image
        # Markers long enough that random ciphertext cannot hold them by chance (a
        # 3-byte one would appear in a few per cent of 400 KB blobs).
        for marker in [*SECRETS, b"Exif\x00\x00", b"JFIF\x00", b"xmpmeta"]:
            assert marker not in blob
        assert photo[:4096] not in blob
    # The server holds neither the file key nor the clear descriptor.
    bodies = await database_sync_to_async(lambda: [bytes(e.body) for e in Envelope.objects.all()])()
    key_bytes = base64.urlsafe_b64decode(received.key + "=")
    assert not [body for body in bodies if key_bytes in body or received.key.encode() in body]
    # ...and never loaded an image library to handle uploads.
    maps = libraries_loaded_by(server.process.pid)
    assert "_imaging" not in maps
    assert "PIL" not in maps


async def test_strangers_and_tampering_get_clear_errors_and_no_file(
    attachment_server, people, tmp_path
):
    server = attachment_server.current
    message_id = str(uuid.uuid4())
    async with AttachmentApi(
        base_url=server.http_url, token=people["nurse"], retry_delays=NO_WAIT
    ) as nurse_api:
        descriptor = await send_attachment(
            nurse_api,
            room=people["room"],
            message_id=message_id,
            source=phone_jpeg(2400, 1800, orientation=1, grain=True),
            mime="image/jpeg",
        )
    nurse = WsClient(server.ws_url, people["nurse"])
    await nurse.connect()
    body = seal({"type": "attachment", "attachment": descriptor.to_dict()})
    await nurse.send({"type": "send", "room": people["room"], "id": message_id, "body": body})
    await nurse.receive_type("ack")
    await nurse.close()
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    async with AttachmentApi(
        base_url=server.http_url, token=people["outsider"], retry_delays=NO_WAIT
    ) as outsider_api:
        with pytest.raises(AttachmentServerError) as refused:
            await receive_attachment(outsider_api, descriptor, inbox / "photo.jpg")
    assert (refused.value.status, refused.value.code) == (404, "attachment_not_found")
    assert refused.value.message_fr
    assert leftovers(inbox) == []

    [stored] = [
        path for path in blob_files(attachment_server.store) if path.name == descriptor.blob
    ]
    original = stored.read_bytes()
    chunk = CIPHER_CHUNK_BYTES
    swapped = (
        original[:HEADER_BYTES]
        + original[HEADER_BYTES + chunk : HEADER_BYTES + 2 * chunk]
        + original[HEADER_BYTES : HEADER_BYTES + chunk]
        + original[HEADER_BYTES + 2 * chunk :]
    )
    flipped = bytearray(original)
    flipped[len(original) // 2] ^= 0x10
    truncated = original[: HEADER_BYTES + chunk]
    cases = {
        "flipped bit": (bytes(flipped), "decrypt_failed"),
        "reordered chunks": (swapped, "decrypt_failed"),
        "truncated at a chunk boundary": (truncated, "size_mismatch"),
    }
    async with AttachmentApi(
        base_url=server.http_url, token=people["doctor"], retry_delays=NO_WAIT
    ) as doctor_api:
        for name, (tampered, code) in cases.items():
            stored.write_bytes(tampered)
            # A server lying consistently: the size it announces matches what it serves.
            await database_sync_to_async(Attachment.objects.filter(pk=descriptor.blob).update)(
                size=len(tampered)
            )
            with pytest.raises(AttachmentError) as tamper_refused:
                await receive_attachment(doctor_api, descriptor, inbox / "photo.jpg")
            assert tamper_refused.value.code == code, name
            assert tamper_refused.value.message_fr
            assert leftovers(inbox) == [], name

        # A blob swapped whole for another one of the same size fails the hash check
        # before the last chunk is even accepted.
        other = bytearray(original)
        other[-1] ^= 1
        stored.write_bytes(bytes(other))
        await database_sync_to_async(Attachment.objects.filter(pk=descriptor.blob).update)(
            size=len(original)
        )
        with pytest.raises(AttachmentError) as hash_refused:
            await receive_attachment(doctor_api, descriptor, inbox / "photo.jpg")
        assert hash_refused.value.code == "hash_mismatch"
        assert leftovers(inbox) == []

        stored.write_bytes(original)
        await receive_attachment(doctor_api, descriptor, inbox / "photo.jpg")
    assert leftovers(inbox) == ["photo.jpg"]


async def test_limits_refuse_with_clear_errors_and_leave_nothing(attachment_server, people):
    server = attachment_server.current
    async with AttachmentApi(
        base_url=server.http_url, token=people["nurse"], retry_delays=NO_WAIT
    ) as api:
        with pytest.raises(AttachmentServerError) as too_large:
            await send_attachment(
                api,
                room=people["room"],
                message_id="big",
                source=os.urandom(3 * 1024 * 1024 + 1),
                mime="application/octet-stream",
            )
        assert (too_large.value.status, too_large.value.code) == (413, "attachment_too_large")

        for number in range(2):
            await send_attachment(
                api,
                room=people["room"],
                message_id=f"doc{number}",
                source=os.urandom(3_100_000),
                mime="application/octet-stream",
            )
        with pytest.raises(AttachmentServerError) as over_quota:
            await send_attachment(
                api,
                room=people["room"],
                message_id="photo",
                source=phone_jpeg(3000, 2000, grain=True),
                mime="image/jpeg",
            )
        assert (over_quota.value.status, over_quota.value.code) == (507, "quota_exceeded")
        assert "quota" in over_quota.value.message_fr

    # The two documents are stored; of the refused photo nothing is, not even its
    # thumbnail, which fit in the quota and had been uploaded first.
    rows = await database_sync_to_async(
        lambda: sorted(Attachment.objects.values_list("message_id", "state"))
    )()
    assert rows == [("doc0", "complete"), ("doc1", "complete")]
    assert len(blob_files(attachment_server.store)) == 2
    assert not any(path.is_file() for path in (attachment_server.store / "partial").rglob("*"))


async def test_an_upload_survives_a_server_crash_and_resumes(attachment_server, people, tmp_path):
    server = attachment_server.current
    port = server.port
    document = b"%PDF-1.7\n" + os.urandom(2_500_000)  # 10 parts of 256 KiB
    parts_done: list[int] = []
    restarted = threading.Event()

    def restart() -> None:
        attachment_server.start(port=port)
        restarted.set()

    def crash_after_three_parts(done: int, total: int) -> None:
        parts_done.append(done)
        if len(parts_done) == 4 and not restarted.is_set():  # initial call + 3 parts
            server.kill_hard()
            # The phone keeps retrying while the service comes back on the same port.
            threading.Thread(target=restart, daemon=True).start()

    async with AttachmentApi(
        base_url=server.http_url,
        token=people["nurse"],
        retry_delays=(0.5, 1.0, 2.0, 4.0, 8.0, 8.0),
    ) as api:
        descriptor = await send_attachment(
            api,
            room=people["room"],
            message_id="prescription",
            source=document,
            mime="application/pdf",
            name="ordonnance.pdf",
            progress=crash_after_three_parts,
        )
    assert restarted.is_set()
    assert len(attachment_server.processes) == 2
    sizes = [b - a for a, b in itertools.pairwise(parts_done)]
    assert sizes.count(256 * 1024) == 9  # every part sent once: nothing started over

    destination = tmp_path / "ordonnance.pdf"
    async with AttachmentApi(
        base_url=attachment_server.current.http_url, token=people["nurse"], retry_delays=NO_WAIT
    ) as api:
        await receive_attachment(api, descriptor, destination)
    assert destination.read_bytes() == document


async def test_an_app_restarted_mid_upload_resumes_with_the_upload_id(attachment_server, people):
    from client.attachments.sending import prepare_document

    server = attachment_server.current
    blob = prepare_document(b"%PDF-1.7\n" + os.urandom(1_000_000), declared_mime="application/pdf")
    try:
        async with AttachmentApi(
            base_url=server.http_url, token=people["nurse"], retry_delays=NO_WAIT
        ) as first_run:
            state = await first_run.start_upload(
                room=people["room"], message_id="m1", size=blob.ciphertext_size
            )
            for index in (0, 2):  # then the app is killed
                blob.file.seek(index * state.part_size)
                await first_run.put_part(state.attachment, index, blob.file.read(state.part_size))

        progress: list[int] = []
        async with AttachmentApi(
            base_url=server.http_url, token=people["nurse"], retry_delays=NO_WAIT
        ) as second_run:
            attachment = await second_run.upload_blob(
                blob.file,
                size=blob.ciphertext_size,
                sha256=blob.sha256,
                resume=state.attachment,
                progress=lambda done, _: progress.append(done),
            )
    finally:
        blob.file.close()
    assert attachment == state.attachment
    assert progress[0] == 2 * state.part_size  # parts 0 and 2 were not sent again
    assert len(progress) == 1 + state.parts - 2
    [stored] = blob_files(attachment_server.store)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == blob.sha256
