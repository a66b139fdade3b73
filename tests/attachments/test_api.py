"""The attachment REST API in-process, on PostgreSQL: upload in parts, limits, quota,
who may download, resume, and the retention purge. Blobs are real encrypted files."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from attachments.models import Attachment, AttachmentPart
from attachments.purge import purge_attachments
from chat.clock import SYSTEM_CLOCK
from chat.storage.base import AppendRequest
from chat.storage.orm import OrmMessageStore
from client.attachments.stream import encrypt_bytes, new_file_key
from tests.attachments.conftest import stored_files
from tests.signed_rooms import add_member as do_add_member
from tests.signed_rooms import create_room as do_create_room
from tests.signed_rooms import remove_member as do_remove_member

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "/api/v1/attachments"


@pytest.fixture
def devices(practitioners, device_token):
    return {
        "nurse": device_token(practitioners["nurse"], "phone"),
        "nurse_tablet": device_token(practitioners["nurse"], "tablet"),
        "doctor": device_token(practitioners["doctor"], "phone"),
        "pharmacist": device_token(practitioners["pharmacist"], "phone"),
        "physio": device_token(practitioners["physio"], "phone"),
    }


def client_of(devices, who: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {devices[who][1]}")
    return client


@pytest.fixture
def room(practitioners):
    return do_create_room(
        creator=practitioners["nurse"],
        kind="care_team",
        member_ids=[practitioners["doctor"].national_id, practitioners["pharmacist"].national_id],
    )


def blob_of(size: int) -> bytes:
    """A real encrypted blob whose plaintext is ``size`` bytes."""
    return encrypt_bytes(bytes(index % 199 for index in range(size)), file_key=new_file_key())


def start(client: APIClient, room_id: int, blob: bytes, message_id: str = "m1"):
    return client.post(
        f"{BASE}/uploads",
        {"room": room_id, "message_id": message_id, "size": len(blob)},
        format="json",
    )


def put_part(client: APIClient, upload: dict, index: int, blob: bytes):
    part = blob[index * upload["part_size"] : (index + 1) * upload["part_size"]]
    return client.put(
        f"{BASE}/uploads/{upload['attachment']}/parts/{index}",
        data=part,
        content_type="application/octet-stream",
    )


def upload_whole(client: APIClient, room_id: int, blob: bytes, message_id: str = "m1") -> str:
    response = start(client, room_id, blob, message_id)
    assert response.status_code == 201, response.content
    upload = response.json()
    for index in range(upload["parts"]):
        assert put_part(client, upload, index, blob).status_code == 200
    done = client.post(
        f"{BASE}/uploads/{upload['attachment']}/complete",
        {"sha256": hashlib.sha256(blob).hexdigest()},
        format="json",
    )
    assert done.status_code == 201, done.content
    return str(upload["attachment"])


def send_message(devices, who: str, room_id: int, message_id: str) -> int:
    """Store an envelope as the WebSocket path does; returns its seq."""
    device_id = devices[who][0]
    from chat.models import Device

    practitioner_id = Device.objects.get(pk=device_id).practitioner_id
    stored = async_to_sync(OrmMessageStore(clock=SYSTEM_CLOCK).append)(
        AppendRequest(
            room_id=room_id,
            device_id=device_id,
            practitioner_id=practitioner_id,
            client_id=message_id,
            body=b"\x01opaque envelope",
        )
    )
    return stored.seq


async def _collect(content) -> bytes:
    return b"".join([piece async for piece in content])


def download(client: APIClient, attachment: str, **headers):
    """The response and its body; the body streams from an async iterator, as under ASGI."""
    response = client.get(f"{BASE}/{attachment}", **headers)
    if response.streaming:
        return response, async_to_sync(_collect)(response.streaming_content)  # type: ignore[attr-defined]
    return response, response.content


def error_code(response) -> str:
    return str(response.json()["error"]["code"])


def test_upload_in_parts_then_download_after_the_message_is_sent(blob_root, devices, room):
    blob = blob_of(40_000)  # 3 parts of 16 KiB
    nurse, doctor = client_of(devices, "nurse"), client_of(devices, "doctor")
    attachment = upload_whole(nurse, room.pk, blob)

    # Before the message exists only the uploading device can fetch the blob.
    response, body = download(nurse, attachment)
    assert (response.status_code, body) == (200, blob)
    assert error_code(download(doctor, attachment)[0]) == "attachment_not_found"
    assert download(client_of(devices, "nurse_tablet"), attachment)[0].status_code == 404

    send_message(devices, "nurse", room.pk, "m1")
    response, body = download(doctor, attachment)
    assert (response.status_code, body) == (200, blob)
    assert response["Content-Length"] == str(len(blob))
    assert response["ETag"] == f'"{hashlib.sha256(blob).hexdigest()}"'
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Cache-Control"] == "private, no-store"
    # The parts are gone; one blob is stored, byte for byte what was uploaded.
    assert AttachmentPart.objects.count() == 0
    files = stored_files(blob_root)
    assert [path.read_bytes() for path in files] == [blob]


def test_download_resumes_with_a_range(blob_root, devices, room):
    blob = blob_of(30_000)
    attachment = upload_whole(client_of(devices, "nurse"), room.pk, blob)
    send_message(devices, "nurse", room.pk, "m1")
    doctor = client_of(devices, "doctor")
    response, body = download(doctor, attachment, HTTP_RANGE="bytes=1000-")
    assert (response.status_code, body) == (206, blob[1000:])
    assert response["Content-Range"] == f"bytes 1000-{len(blob) - 1}/{len(blob)}"
    response, body = download(doctor, attachment, HTTP_RANGE="bytes=10-19")
    assert (response.status_code, body) == (206, blob[10:20])
    response, _ = download(doctor, attachment, HTTP_RANGE=f"bytes={len(blob)}-")
    assert response.status_code == 416


def test_who_may_download(blob_root, devices, room, practitioners):
    """Members whose history includes the message: yes. Outsiders, members who joined
    after it, members who left: no — and all get the same answer as a missing blob."""
    attachment = upload_whole(client_of(devices, "nurse"), room.pk, blob_of(1000))
    send_message(devices, "nurse", room.pk, "m1")
    nurse = practitioners["nurse"]
    assert download(client_of(devices, "pharmacist"), attachment)[0].status_code == 200
    assert download(client_of(devices, "nurse_tablet"), attachment)[0].status_code == 200

    outsider = download(client_of(devices, "physio"), attachment)[0]
    assert (outsider.status_code, error_code(outsider)) == (404, "attachment_not_found")
    assert outsider.json()["error"]["message_fr"]

    do_add_member(actor=nurse, room_id=room.pk, practitioner_id=practitioners["physio"].national_id)
    late = download(client_of(devices, "physio"), attachment)[0]
    assert error_code(late) == "attachment_not_found"

    do_remove_member(
        actor=nurse, room_id=room.pk, practitioner_id=practitioners["pharmacist"].national_id
    )
    gone = download(client_of(devices, "pharmacist"), attachment)[0]
    assert error_code(gone) == "attachment_not_found"

    unknown = download(client_of(devices, "doctor"), "0" * 32)[0]
    assert error_code(unknown) == "attachment_not_found"
    assert APIClient().get(f"{BASE}/{attachment}").status_code == 401


def test_a_message_with_the_same_id_in_another_room_does_not_unlock_the_blob(
    blob_root, devices, room, practitioners
):
    attachment = upload_whole(client_of(devices, "nurse"), room.pk, blob_of(500))
    other = do_create_room(
        creator=practitioners["nurse"],
        kind="direct",
        member_ids=[practitioners["physio"].national_id],
    )
    send_message(devices, "nurse", other.pk, "m1")
    assert download(client_of(devices, "doctor"), attachment)[0].status_code == 404
    assert download(client_of(devices, "physio"), attachment)[0].status_code == 404


def test_only_members_may_upload_into_a_room(blob_root, devices, room):
    response = start(client_of(devices, "physio"), room.pk, blob_of(100))
    assert (response.status_code, error_code(response)) == (404, "not_member")
    assert Attachment.objects.count() == 0


def test_an_oversized_upload_is_refused_before_any_byte(blob_root, devices, room):
    response = start(client_of(devices, "nurse"), room.pk, b"x" * 50_001)
    assert (response.status_code, error_code(response)) == (413, "attachment_too_large")
    assert "50000" in response.json()["error"]["message"]
    assert "taille" in response.json()["error"]["message_fr"]
    assert Attachment.objects.count() == 0


def test_the_quota_counts_stored_and_reserved_bytes(blob_root, devices, room):
    nurse = client_of(devices, "nurse")
    upload_whole(nurse, room.pk, blob_of(45_000), "m1")
    assert start(nurse, room.pk, blob_of(45_000), "m2").status_code == 201  # reserved
    refused = start(nurse, room.pk, blob_of(45_000), "m3")
    assert (refused.status_code, error_code(refused)) == (507, "quota_exceeded")
    assert "quota" in refused.json()["error"]["message_fr"]
    # Another practitioner has their own quota; the other device of the nurse does not.
    assert start(client_of(devices, "doctor"), room.pk, blob_of(45_000), "d1").status_code == 201
    tablet = start(client_of(devices, "nurse_tablet"), room.pk, blob_of(45_000), "t1")
    assert error_code(tablet) == "quota_exceeded"
    assert Attachment.objects.filter(message_id="m3").count() == 0


def test_abandoning_an_upload_frees_everything(blob_root, devices, room):
    nurse = client_of(devices, "nurse")
    blob = blob_of(40_000)
    upload = start(nurse, room.pk, blob).json()
    put_part(nurse, upload, 0, blob)
    assert stored_files(blob_root)
    assert nurse.delete(f"{BASE}/uploads/{upload['attachment']}").status_code == 204
    assert stored_files(blob_root) == []
    assert Attachment.objects.count() == 0


def test_bad_parts_are_refused_and_resume_sends_only_the_missing_ones(blob_root, devices, room):
    nurse = client_of(devices, "nurse")
    blob = blob_of(40_000)
    upload = start(nurse, room.pk, blob).json()
    assert upload["parts"] == 3
    url = f"{BASE}/uploads/{upload['attachment']}/parts"
    wrong_size = nurse.put(f"{url}/0", data=b"x" * 10, content_type="application/octet-stream")
    assert (wrong_size.status_code, error_code(wrong_size)) == (400, "upload_part_invalid")
    beyond = nurse.put(f"{url}/3", data=b"x", content_type="application/octet-stream")
    assert error_code(beyond) == "upload_part_invalid"
    # Someone else's device cannot add parts to this upload.
    assert error_code(put_part(client_of(devices, "nurse_tablet"), upload, 0, blob)) == (
        "attachment_not_found"
    )

    put_part(nurse, upload, 2, blob)
    put_part(nurse, upload, 0, blob)
    put_part(nurse, upload, 0, blob)  # a retried part replaces the first copy
    early = nurse.post(
        f"{BASE}/uploads/{upload['attachment']}/complete",
        {"sha256": hashlib.sha256(blob).hexdigest()},
        format="json",
    )
    assert (early.status_code, error_code(early)) == (409, "upload_incomplete")
    assert "1" in early.json()["error"]["message"]
    state = nurse.get(f"{BASE}/uploads/{upload['attachment']}").json()
    assert state["received"] == [0, 2]
    assert len(stored_files(blob_root)) == 2  # the replaced copy of part 0 is gone

    put_part(nurse, upload, 1, blob)
    done = nurse.post(
        f"{BASE}/uploads/{upload['attachment']}/complete",
        {"sha256": hashlib.sha256(blob).hexdigest()},
        format="json",
    )
    assert done.status_code == 201
    again = nurse.post(
        f"{BASE}/uploads/{upload['attachment']}/complete",
        {"sha256": hashlib.sha256(blob).hexdigest()},
        format="json",
    )
    assert again.status_code == 201  # completing twice answers the same
    assert [path.read_bytes() for path in stored_files(blob_root)] == [blob]


def test_a_hash_mismatch_discards_the_whole_upload(blob_root, devices, room):
    nurse = client_of(devices, "nurse")
    blob = blob_of(20_000)
    upload = start(nurse, room.pk, blob).json()
    tampered = bytearray(blob)
    tampered[5] ^= 1
    for index in range(upload["parts"]):
        put_part(nurse, upload, index, bytes(tampered))
    response = nurse.post(
        f"{BASE}/uploads/{upload['attachment']}/complete",
        {"sha256": hashlib.sha256(blob).hexdigest()},
        format="json",
    )
    assert (response.status_code, error_code(response)) == (422, "attachment_hash_mismatch")
    assert stored_files(blob_root) == []
    assert Attachment.objects.count() == 0


def test_requests_are_validated(blob_root, devices, room):
    nurse = client_of(devices, "nurse")
    bad_id = nurse.post(
        f"{BASE}/uploads", {"room": room.pk, "message_id": "no spaces", "size": 100}, format="json"
    )
    assert error_code(bad_id) == "bad_request"
    tiny = nurse.post(
        f"{BASE}/uploads", {"room": room.pk, "message_id": "m", "size": 10}, format="json"
    )
    assert error_code(tiny) == "bad_request"
    upload = start(nurse, room.pk, blob_of(10)).json()
    bad_hash = nurse.post(
        f"{BASE}/uploads/{upload['attachment']}/complete", {"sha256": "X" * 64}, format="json"
    )
    assert error_code(bad_hash) == "bad_request"


def test_the_purge_applies_the_retention_rule(blob_root, devices, room):
    nurse = client_of(devices, "nurse")
    now = timezone.now()
    sent = upload_whole(nurse, room.pk, blob_of(1000), "sent")
    send_message(devices, "nurse", room.pk, "sent")
    unsent = upload_whole(nurse, room.pk, blob_of(1000), "never-sent")
    blob = blob_of(40_000)
    stale = start(nurse, room.pk, blob, "stale").json()
    put_part(nurse, stale, 0, blob)
    assert len(stored_files(blob_root)) == 3

    # Within the grace periods nothing goes.
    report = purge_attachments(now=now + timedelta(minutes=30))
    assert (report.stale_uploads, report.unsent, report.expired) == (0, 0, 0)

    report = purge_attachments(now=now + timedelta(hours=2))
    assert (report.stale_uploads, report.unsent, report.expired) == (1, 1, 0)
    assert report.freed_bytes == len(blob) + len(blob_of(1000))
    assert set(Attachment.objects.values_list("pk", flat=True)) == {sent}
    assert Attachment.objects.filter(pk=unsent).count() == 0
    assert len(stored_files(blob_root)) == 1

    # A sent attachment lives until the retention period ends.
    report = purge_attachments(now=now + timedelta(days=31))
    assert report.expired == 1
    assert stored_files(blob_root) == []
    assert Attachment.objects.count() == 0


def test_the_purge_removes_blobs_whose_message_was_purged_and_orphan_parts(
    blob_root, devices, room
):
    from chat.models import Envelope

    nurse = client_of(devices, "nurse")
    attachment = upload_whole(nurse, room.pk, blob_of(1000), "m1")
    send_message(devices, "nurse", room.pk, "m1")
    Envelope.objects.filter(client_id="m1").delete()  # the message's own retention
    orphan = blob_root / "partial" / ("f" * 32)
    orphan.mkdir(parents=True)
    (orphan / "000000-deadbeef").write_bytes(b"left by a crash")

    call_command("purge_attachments")  # with the real clock: within the grace period
    assert Attachment.objects.filter(pk=attachment).exists()
    assert not orphan.exists()

    report = purge_attachments(now=timezone.now() + timedelta(hours=2))
    assert report.unsent == 1
    assert stored_files(blob_root) == []


def test_a_complete_blob_can_be_withdrawn_until_its_message_is_sent(blob_root, devices, room):
    nurse = client_of(devices, "nurse")
    withdrawn = upload_whole(nurse, room.pk, blob_of(1000), "m1")
    assert nurse.delete(f"{BASE}/uploads/{withdrawn}").status_code == 204
    assert stored_files(blob_root) == []

    sent = upload_whole(nurse, room.pk, blob_of(1000), "m2")
    send_message(devices, "nurse", room.pk, "m2")
    refused = nurse.delete(f"{BASE}/uploads/{sent}")
    assert (refused.status_code, error_code(refused)) == (409, "conflict")
    doctor = client_of(devices, "doctor")
    assert error_code(doctor.delete(f"{BASE}/uploads/{sent}")) == "attachment_not_found"
    assert len(stored_files(blob_root)) == 1
