"""The wound-photo path end to end: real server processes, PostgreSQL, Redis, and the
SDK's end-to-end encrypted clients (``RelaisClient``) on both sides.

The nurse's client cleans, pads, encrypts and uploads the photo, then sends the
descriptor (and so the file key and the thumbnail) inside an end-to-end encrypted
message; the GP's client decrypts the message, shows the thumbnail, fetches the photo,
checks it and saves the file. The server sees one blob per message, of a padded size. The lower
layers (resumable uploads across a server crash) are driven through ``AttachmentApi``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import os
import stat
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from PIL import Image, UnidentifiedImageError

from attachments.models import Attachment
from chat.models import Envelope
from client.attachments import (
    AttachmentApi,
    AttachmentError,
    AttachmentServerError,
    receive_attachment,
    send_attachment,
)
from client.attachments.descriptor import build_descriptor
from client.attachments.padding import padded_size
from client.attachments.stream import (
    CIPHER_CHUNK_BYTES,
    HEADER_BYTES,
    ciphertext_size,
    encrypt_bytes,
    new_file_key,
)
from client.files import attachment_content
from client.session import RelaisClient
from tests.attachments.photos import SECRETS, phone_jpeg, red_corner
from tests.attachments.test_images import assert_no_metadata, png_bomb
from tests.e2e.sdk import barrier, next_alert, next_message, token_client
from tests.signed_rooms import create_room as do_create_room

pytestmark = pytest.mark.e2e

NO_WAIT = (0.0, 0.0, 0.0)
NURSE, DOCTOR, PHARMACIST = "810003456786", "810001987659", "810002765435"
OpenClient = Callable[[str, str], Awaitable[RelaisClient]]


@pytest.fixture
async def sdk(
    attachment_server, practitioners, device_token, tmp_path
) -> AsyncIterator[OpenClient]:
    """Opens SDK clients ("nurse", "doctor", ...) on the current server process, each a
    new device certified in the key-transparency log; closes them at the end."""
    opened: list[RelaisClient] = []

    async def open_client(who: str, name: str) -> RelaisClient:
        practitioner = practitioners[who]
        device, token = await database_sync_to_async(device_token)(practitioner, name)
        client = await token_client(
            attachment_server.current.http_url,
            tmp_path,
            national_id=practitioner.national_id,
            name=f"{who}-{name}",
            device=device,
            token=token,
        )
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


async def direct_room(nurse: RelaisClient, doctor: RelaisClient) -> int:
    room = await nurse.create_room(kind="direct", members=[DOCTOR])
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    return room


def blob_files(store: Path) -> list[Path]:
    return sorted(path for path in (store / "blobs").rglob("*") if path.is_file())


def partial_files(store: Path) -> list[Path]:
    return sorted(path for path in (store / "partial").rglob("*") if path.is_file())


def libraries_loaded_by(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def _all_envelopes() -> list[bytes]:
    return [bytes(envelope.body) for envelope in Envelope.objects.all()]


def _attachment_rows() -> list[tuple[str, str]]:
    return sorted(Attachment.objects.values_list("message_id", "state"))


def _blob_sizes() -> dict[str, int]:
    return dict(Attachment.objects.values_list("message_id", "size"))


async def all_envelopes() -> list[bytes]:
    bodies: list[bytes] = await database_sync_to_async(_all_envelopes)()
    return bodies


async def attachment_rows() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = await database_sync_to_async(_attachment_rows)()
    return rows


async def blob_sizes() -> dict[str, int]:
    """The size of every blob the server holds, by the message id it was uploaded for."""
    sizes: dict[str, int] = await database_sync_to_async(_blob_sizes)()
    return sizes


async def test_a_wound_photo_goes_from_the_nurse_to_the_gp_through_the_sdk(
    attachment_server, sdk, tmp_path
):
    server = attachment_server.current
    nurse = await sdk("nurse", "phone")
    doctor = await sdk("doctor", "tablet")
    room = await direct_room(nurse, doctor)
    camera = tmp_path / "DCIM" / "IMG_2041.JPG"
    camera.parent.mkdir()
    camera.write_bytes(phone_jpeg(3000, 2000, orientation=6, grain=True))  # GPS in its EXIF
    caption = "Plaie talon gauche J+3"
    sent_progress: list[tuple[int, int]] = []

    sent = await nurse.send_photo(
        room,
        camera,
        text=caption,
        progress=lambda done, total: sent_progress.append((done, total)),
    )
    descriptor = sent.descriptor
    assert descriptor.thumbnail is not None
    total = descriptor.ciphertext_size  # one blob: the thumbnail is in the message
    assert sent_progress[-1] == (total, total)
    assert [done for done, _ in sent_progress] == sorted(done for done, _ in sent_progress)
    assert descriptor.ciphertext_size > 2 * CIPHER_CHUNK_BYTES  # several AEAD chunks
    assert (descriptor.name, descriptor.mime) == ("IMG_2041.jpg", "image/jpeg")

    # The GP's client decrypts the message: a typed descriptor, the caption as text.
    message = await next_message(doctor)
    assert (message.seq, message.sender, message.text) == (sent.seq, nurse.me, caption)
    assert message.attachment == descriptor
    assert message.content["type"] == "attachment"
    thumbnail = await doctor.fetch_thumbnail(message.attachment)
    inbox = tmp_path / "inbox"
    fetched: list[tuple[int, int]] = []
    saved = await doctor.save_attachment(
        message.attachment, inbox, progress=lambda done, size: fetched.append((done, size))
    )
    assert saved == inbox / "IMG_2041.jpg"
    assert fetched[-1] == (descriptor.ciphertext_size, descriptor.ciphertext_size)
    assert len(fetched) > 1  # reported as the bytes stream in, not once at the end
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # health data: owner only

    photo = saved.read_bytes()
    assert len(photo) == descriptor.size
    image = Image.open(io.BytesIO(photo))
    assert red_corner(image) == "top-right"  # upright: EXIF orientation 6 applied
    assert image.size == (descriptor.width, descriptor.height) == (1365, 2048)
    assert_no_metadata(photo)  # no EXIF, so no GPS; no XMP, IPTC, comment, profile
    assert_no_metadata(thumbnail)
    preview = Image.open(io.BytesIO(thumbnail))
    assert max(preview.size) == 320
    assert red_corner(preview) == "top-right"
    assert leftovers(inbox) == ["IMG_2041.jpg"]

    # What the server stores is one blob, exactly the announced ciphertext of the padded
    # photo, and nothing readable: no second blob pairs with it, no thumbnail.
    stored = {path.name: path.read_bytes() for path in blob_files(attachment_server.store)}
    assert set(stored) == {descriptor.blob}
    assert await blob_sizes() == {sent.message_id: len(stored[descriptor.blob])}
    assert len(stored[descriptor.blob]) == ciphertext_size(padded_size(len(photo)))
    assert hashlib.sha256(stored[descriptor.blob]).hexdigest() == descriptor.sha256
    for blob in stored.values():
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(blob))
        assert not blob.startswith(b"\xff\xd8")  # no JPEG start of image
        # Markers long enough that random ciphertext cannot hold them by chance (a
        # 3-byte one would appear in a few per cent of 400 KB blobs).
        for marker in [*SECRETS, b"Exif\x00\x00", b"JFIF\x00", b"xmpmeta"]:
            assert marker not in blob
        assert photo[:4096] not in blob
        assert thumbnail[:1024] not in blob
    # The server holds neither the file key nor the descriptor, thumbnail, caption or file
    # name: not in the envelopes, not in its log.
    key = base64.urlsafe_b64decode(descriptor.key + "=")
    needles = [
        key,
        descriptor.key.encode(),
        caption.encode(),
        b"IMG_2041",
        descriptor.sha256.encode(),
        thumbnail[:1024],
        descriptor.thumbnail.data[:64].encode(),
    ]
    bodies = await all_envelopes()
    assert len(bodies) == 1
    assert [n for n in needles if any(n in body for body in bodies)] == []
    log = (attachment_server.log_dir / "server0.log").read_bytes()
    assert [n for n in needles if n in log] == []
    # ...and it never loaded an image library to handle uploads.
    maps = libraries_loaded_by(server.process.pid)
    assert "_imaging" not in maps
    assert "PIL" not in maps


async def test_only_current_members_can_fetch_a_photo(attachment_server, sdk, tmp_path):
    nurse = await sdk("nurse", "phone")
    doctor = await sdk("doctor", "tablet")
    pharmacist = await sdk("pharmacist", "phone")
    outsider = await sdk("physio", "phone")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR, PHARMACIST])
    async with asyncio.timeout(20):
        for member in (doctor, pharmacist):
            await member.wait_for_room(lambda r: r.room_id == room)
    sent = await nurse.send_photo(room, phone_jpeg(1600, 1200, grain=True), name="plaie.jpg")

    # While he is a member, the pharmacist opens the photo like anyone in the room.
    message = await next_message(pharmacist)
    assert message.attachment == sent.descriptor
    before = await pharmacist.save_attachment(message.attachment, tmp_path / "while-member")
    assert before.read_bytes()[:2] == b"\xff\xd8"

    await nurse.remove_member(room, PHARMACIST)
    after = tmp_path / "after-removal"
    with pytest.raises(AttachmentServerError) as refused:
        await pharmacist.save_attachment(message.attachment, after)
    assert (refused.value.status, refused.value.code) == (404, "attachment_not_found")
    assert refused.value.message_fr
    assert leftovers(after) == []  # no empty or partial file
    # The preview came in the message he received as a member; it needs no server.
    preview = await pharmacist.fetch_thumbnail(message.attachment)
    assert Image.open(io.BytesIO(preview)).format == "JPEG"

    # Someone who was never in the room, even holding the descriptor, gets the same 404.
    with pytest.raises(AttachmentServerError) as stranger:
        await outsider.save_attachment(sent.descriptor, tmp_path / "outsider")
    assert (stranger.value.status, stranger.value.code) == (404, "attachment_not_found")
    assert leftovers(tmp_path / "outsider") == []

    # The members who remain still can.
    kept = await doctor.save_attachment((await next_message(doctor)).attachment, tmp_path / "gp")
    assert kept.read_bytes() == before.read_bytes()


async def test_tampered_blobs_get_clear_errors_and_no_file(attachment_server, sdk, tmp_path):
    nurse = await sdk("nurse", "phone")
    doctor = await sdk("doctor", "tablet")
    room = await direct_room(nurse, doctor)
    await nurse.send_photo(room, phone_jpeg(2400, 1800, orientation=1, grain=True))
    descriptor = (await next_message(doctor)).attachment
    assert descriptor is not None
    inbox = tmp_path / "inbox"
    inbox.mkdir()

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
    for name, (tampered, code) in cases.items():
        stored.write_bytes(tampered)
        # A server lying consistently: the size it announces matches what it serves.
        await database_sync_to_async(Attachment.objects.filter(pk=descriptor.blob).update)(
            size=len(tampered)
        )
        with pytest.raises(AttachmentError) as tamper_refused:
            await doctor.save_attachment(descriptor, inbox)
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
        await doctor.download_attachment(descriptor, inbox / "photo.jpg")
    assert hash_refused.value.code == "hash_mismatch"
    assert leftovers(inbox) == []

    stored.write_bytes(original)
    await doctor.download_attachment(descriptor, inbox / "photo.jpg")
    assert leftovers(inbox) == ["photo.jpg"]


async def test_refused_files_send_no_message_and_leave_nothing(attachment_server, sdk):
    nurse = await sdk("nurse", "phone")
    doctor = await sdk("doctor", "tablet")
    room = await direct_room(nurse, doctor)

    # Refused on the phone, before any byte is uploaded.
    with pytest.raises(AttachmentError) as bomb:
        await nurse.send_photo(room, png_bomb(9_000, 9_000))
    assert bomb.value.code == "image_too_many_pixels"
    assert "décompression" in bomb.value.message_fr
    with pytest.raises(AttachmentError) as not_a_photo:
        await nurse.send_photo(room, b"%PDF-1.7\n" + os.urandom(1000))
    assert not_a_photo.value.code == "mime_mismatch"
    assert "pas une photo" in not_a_photo.value.message_fr
    assert await attachment_rows() == []

    # Refused by the server: the per-file limit, then the quota.
    with pytest.raises(AttachmentServerError) as too_large:
        await nurse.send_file(room, os.urandom(3 * 1024 * 1024 + 1), name="scan.bin")
    assert (too_large.value.status, too_large.value.code) == (413, "attachment_too_large")
    assert too_large.value.message_fr
    # Each pads to 3,080,192 bytes: a blob just under the 3 MiB limit; two of them leave
    # less of the 6 MiB quota than a photo needs.
    documents = [
        await nurse.send_file(room, os.urandom(3_050_000), name=f"scan{number}.bin")
        for number in range(2)
    ]
    with pytest.raises(AttachmentServerError) as over_quota:
        await nurse.send_photo(room, phone_jpeg(3000, 2000, grain=True))
    assert (over_quota.value.status, over_quota.value.code) == (507, "quota_exceeded")
    assert "quota" in over_quota.value.message_fr

    # The two documents are stored and were sent; of the refused files nothing is.
    assert await attachment_rows() == sorted((sent.message_id, "complete") for sent in documents)
    assert len(blob_files(attachment_server.store)) == 2
    assert partial_files(attachment_server.store) == []
    assert len(await all_envelopes()) == 2
    received = [await next_message(doctor) for _ in documents]
    assert [m.attachment.name for m in received if m.attachment] == ["scan0.bin", "scan1.bin"]
    await barrier(doctor)
    assert doctor.messages.empty()


async def test_a_photo_whose_message_cannot_be_sent_is_withdrawn(attachment_server, sdk, tmp_path):
    nurse = await sdk("nurse", "phone")
    doctor = await sdk("doctor", "tablet")
    room = await direct_room(nurse, doctor)
    server = attachment_server.current
    restarted = threading.Event()

    def restart() -> None:
        attachment_server.start(port=server.port)
        restarted.set()

    def crash_once_uploaded(done: int, total: int) -> None:
        if done == total and not restarted.is_set():
            # The server dies after the last part, before the upload is completed and the
            # message sent; it comes back, the upload completes, the WebSocket is gone.
            server.kill_hard()
            threading.Thread(target=restart, daemon=True).start()

    photo = phone_jpeg(2400, 1800, grain=True)
    with pytest.raises(ConnectionError):
        await nurse.send_photo(room, photo, progress=crash_once_uploaded)
    assert restarted.is_set()
    assert await attachment_rows() == []
    assert blob_files(attachment_server.store) == []
    assert await all_envelopes() == []

    # Connected again, the same photo goes through.
    for client in (nurse, doctor):
        await client.disconnect()
        await client.connect()
    sent = await nurse.send_photo(room, photo)
    message = await next_message(doctor)
    assert message.attachment == sent.descriptor
    saved = await doctor.save_attachment(message.attachment, tmp_path / "inbox")
    assert saved.name == "photo.jpg"  # no name was given: a safe default


async def test_the_server_sees_one_padded_blob_per_message(attachment_server, sdk, tmp_path):
    nurse = await sdk("nurse", "phone")
    doctor = await sdk("doctor", "tablet")
    room = await direct_room(nurse, doctor)
    inbox = tmp_path / "inbox"

    # A 1-byte and a 1,000-byte file: stored with the sizes of the padding rule (the
    # 512-byte floor, and 1,000 rounded up to 1,024), nothing that says 1 or 1,000.
    tiny = await nurse.send_file(room, b"!", name="one.txt", mime="text/plain")
    page = await nurse.send_file(room, os.urandom(1000), name="thousand.bin")
    photo = await nurse.send_photo(room, phone_jpeg(1600, 1200, grain=True), name="plaie.jpg")
    sizes = await blob_sizes()
    assert (sizes[tiny.message_id], sizes[page.message_id]) == (21 + 512 + 16, 21 + 1024 + 16)
    # ...and a photo is one blob, like any file.
    assert photo.descriptor.thumbnail is not None
    assert sizes[photo.message_id] == photo.descriptor.ciphertext_size
    assert len(sizes) == len(blob_files(attachment_server.store)) == 3
    for sent, expected in ((tiny, b"!"), (page, None)):
        message = await next_message(doctor)
        assert message.attachment == sent.descriptor
        saved = await doctor.save_attachment(message.attachment, inbox)
        assert saved.stat().st_size == sent.descriptor.size
        if expected is not None:
            assert saved.read_bytes() == expected
    assert (await next_message(doctor)).attachment == photo.descriptor

    # A sender announcing 995 bytes for a 1,000-byte file: same padded size, so the blob
    # has the announced size and hash, and decrypts; but its "padding" is not zeros.
    key = new_file_key()
    blob = encrypt_bytes(os.urandom(1000) + bytes(24), file_key=key)
    sha256 = hashlib.sha256(blob).hexdigest()
    async with nurse.attachment_api() as api:
        blob_id = await api.upload_blob(
            io.BytesIO(blob), size=len(blob), sha256=sha256, room=room, message_id="lying-size"
        )
    lying = build_descriptor(blob=blob_id, key=key, sha256=sha256, size=995, mime="text/plain")
    await nurse.send(room, attachment_content(lying, None), message_id="lying-size")
    received = (await next_message(doctor)).attachment
    assert received == lying
    with pytest.raises(AttachmentError) as refused:
        await doctor.save_attachment(received, inbox)
    assert refused.value.code == "size_mismatch"
    assert "not all zero" in refused.value.message
    assert "bourrage" in refused.value.message_fr
    assert sorted(leftovers(inbox)) == ["one.txt", "thousand.bin"]  # nothing of it saved

    # A descriptor whose sizes break the rule is refused on arrival, with an alert.
    broken = {**lying.to_dict(), "ciphertext_size": len(blob) + 1}
    await nurse.send(room, {"type": "attachment", "attachment": broken})
    assert (await next_message(doctor)).attachment is None
    alert = await next_alert(doctor)
    assert (alert.kind, alert.room) == ("bad_descriptor", room)
    assert "padded, is a blob of" in alert.detail


@pytest.fixture
def people(practitioners, device_token):
    """For the transfer layer alone: a room made in the database and device tokens."""
    room = do_create_room(
        creator=practitioners["nurse"],
        kind="direct",
        member_ids=[practitioners["doctor"].national_id],
    )
    return {"room": room.pk, "nurse": device_token(practitioners["nurse"], "phone")[1]}


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
