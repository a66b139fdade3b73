"""Attachment services: ``check_*``/``access_*`` validate and authorise, ``do_*`` write.

Storage objects are written before the database row that names them and deleted after
the row is gone, so a crash between the two can only leave an object no row names;
``purge`` finds those by their prefix. Nothing partial is ever visible to a download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Sum

from attachments.conf import attachment_settings
from attachments.models import Attachment, AttachmentPart, AttachmentState
from attachments.storage import (
    Readable,
    assemble,
    attachment_storage,
    blob_name,
    delete_prefix,
    delete_quietly,
    part_name,
    part_prefix,
    save_exactly,
)
from chat.errors import ErrorCode, RelaisError
from chat.models import Envelope
from chat.services.access import access_membership, access_reader
from directory.models import Practitioner

MESSAGE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# The smallest blob the client format can produce: a 21-byte header and one 16-byte tag.
MIN_BLOB_BYTES = 37


@dataclass(frozen=True, slots=True)
class Usage:
    used_bytes: int
    quota_bytes: int


def quota_usage(*, practitioner_id: str) -> Usage:
    """Bytes a practitioner's stored and in-progress attachments take, and the quota."""
    used = Attachment.objects.filter(uploader_id=practitioner_id).aggregate(total=Sum("size"))
    return Usage(used_bytes=used["total"] or 0, quota_bytes=attachment_settings().quota_bytes)


def check_upload_request(*, message_id: str, size: int) -> None:
    limits = attachment_settings()
    if not MESSAGE_ID.match(message_id):
        raise RelaisError(ErrorCode.BAD_REQUEST, "message_id: 1-64 of A-Z a-z 0-9 . _ : -")
    if size < MIN_BLOB_BYTES:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"size: at least {MIN_BLOB_BYTES} bytes.")
    if size > limits.max_file_bytes:
        raise RelaisError(
            ErrorCode.ATTACHMENT_TOO_LARGE,
            f"{size} bytes; the limit is {limits.max_file_bytes} bytes.",
        )


def do_start_upload(
    *,
    practitioner_id: str,
    device_id: int,
    room_id: int,
    message_id: str,
    size: int,
    now: datetime,
) -> Attachment:
    """Reserve ``size`` bytes of the uploader's quota for a blob meant for the message
    ``message_id`` that this device will send into ``room_id`` (caller is a member)."""
    check_upload_request(message_id=message_id, size=size)
    limits = attachment_settings()
    with transaction.atomic():
        access_membership(room_id=room_id, practitioner_id=practitioner_id)
        # Two uploads starting at once must not both fit in the last free bytes.
        Practitioner.objects.select_for_update().filter(pk=practitioner_id).first()
        usage = quota_usage(practitioner_id=practitioner_id)
        if usage.used_bytes + size > usage.quota_bytes:
            raise RelaisError(
                ErrorCode.QUOTA_EXCEEDED,
                f"{usage.used_bytes} of {usage.quota_bytes} bytes used; this file needs {size}.",
            )
        return Attachment.objects.create(
            room_id=room_id,
            uploader_id=practitioner_id,
            uploader_device_id=device_id,
            message_id=message_id,
            size=size,
            part_size=limits.part_bytes,
            created_at=now,
            updated_at=now,
        )


def access_upload(*, attachment_id: str, device_id: int, practitioner_id: str) -> Attachment:
    """An upload in progress of the calling device, whose practitioner is still in the
    room; ATTACHMENT_NOT_FOUND otherwise (someone else's upload looks absent)."""
    attachment = Attachment.objects.filter(
        pk=attachment_id, uploader_device_id=device_id, state=AttachmentState.UPLOADING
    ).first()
    if attachment is None:
        raise RelaisError(ErrorCode.ATTACHMENT_NOT_FOUND)
    access_membership(room_id=attachment.room_id, practitioner_id=practitioner_id)
    return attachment


def received_parts(*, attachment: Attachment) -> list[int]:
    return sorted(attachment.parts.values_list("index", flat=True))


def do_store_part(
    *,
    attachment_id: str,
    device_id: int,
    practitioner_id: str,
    index: int,
    content: Readable,
    length: int,
    now: datetime,
) -> None:
    """Store part ``index`` (``length`` bytes read from ``content``). Sending a part
    again replaces it, so a client that lost the answer simply retries."""
    attachment = access_upload(
        attachment_id=attachment_id, device_id=device_id, practitioner_id=practitioner_id
    )
    if not 0 <= index < attachment.part_count:
        raise RelaisError(
            ErrorCode.UPLOAD_PART_INVALID, f"Parts are numbered 0 to {attachment.part_count - 1}."
        )
    expected = attachment.expected_part_size(index)
    if length != expected:
        raise RelaisError(ErrorCode.UPLOAD_PART_INVALID, f"Part {index} is {expected} bytes.")
    try:
        name = save_exactly(part_name(attachment.pk, index), content, length=length)
    except ValueError:
        raise RelaisError(ErrorCode.UPLOAD_PART_INVALID, "The body ended early.") from None
    replaced: list[str] = []
    try:
        with transaction.atomic():
            locked = Attachment.objects.select_for_update().filter(
                pk=attachment.pk, state=AttachmentState.UPLOADING
            )
            if not locked.update(updated_at=now):
                raise RelaisError(ErrorCode.ATTACHMENT_NOT_FOUND)
            previous = AttachmentPart.objects.filter(attachment=attachment, index=index).first()
            if previous is not None:
                replaced.append(previous.storage_name)
                previous.storage_name = name
                previous.size = length
                previous.save(update_fields=["storage_name", "size"])
            else:
                AttachmentPart.objects.create(
                    attachment=attachment, index=index, size=length, storage_name=name
                )
    except BaseException:
        delete_quietly([name])
        raise
    delete_quietly(replaced)


def _missing_parts(attachment: Attachment, parts: list[AttachmentPart]) -> list[int]:
    have = {part.index for part in parts}
    return [index for index in range(attachment.part_count) if index not in have]


def do_complete_upload(
    *, attachment_id: str, device_id: int, practitioner_id: str, sha256: str, now: datetime
) -> Attachment:
    """Assemble the parts into the blob and check its SHA-256 (lowercase hex).

    Completing twice with the same hash answers the same. On a hash mismatch the upload
    is deleted whole (parts, blob, quota reservation) and the client starts again.
    """
    if not SHA256_HEX.match(sha256):
        raise RelaisError(ErrorCode.BAD_REQUEST, "sha256: 64 lowercase hex digits.")
    done = Attachment.objects.filter(
        pk=attachment_id, uploader_device_id=device_id, state=AttachmentState.COMPLETE
    ).first()
    if done is not None and done.sha256 == sha256:
        return done
    attachment = access_upload(
        attachment_id=attachment_id, device_id=device_id, practitioner_id=practitioner_id
    )
    with transaction.atomic():
        attachment = Attachment.objects.select_for_update().get(pk=attachment.pk)
        if attachment.state == AttachmentState.COMPLETE:
            if attachment.sha256 == sha256:
                return attachment
            raise RelaisError(ErrorCode.ATTACHMENT_HASH_MISMATCH)
        parts = list(attachment.parts.order_by("index"))
        missing = _missing_parts(attachment, parts)
        if missing:
            shown = ", ".join(str(index) for index in missing[:10])
            raise RelaisError(ErrorCode.UPLOAD_INCOMPLETE, f"Missing parts: {shown}.")
        part_names = [part.storage_name for part in parts]
        stored, digest, total = assemble(blob_name(attachment.pk), part_names)
        if digest != sha256 or total != attachment.size:
            # Delete everything, commit that, then refuse: nothing of the upload is left.
            attachment.storage_name = stored
            do_delete_attachment(attachment)
        else:
            attachment.state = AttachmentState.COMPLETE
            attachment.sha256 = digest
            attachment.storage_name = stored
            attachment.completed_at = now
            attachment.updated_at = now
            attachment.save()
            attachment.parts.all().delete()
            transaction.on_commit(lambda: delete_quietly(part_names))
            return attachment
    raise RelaisError(ErrorCode.ATTACHMENT_HASH_MISMATCH)


def do_abort_upload(*, attachment_id: str, device_id: int, practitioner_id: str) -> None:
    """Give up an upload, or withdraw a complete blob no stored message carries yet: its
    parts, blob and quota reservation go at once. A sent blob goes with its message."""
    attachment = Attachment.objects.filter(pk=attachment_id, uploader_device_id=device_id).first()
    if attachment is None:
        raise RelaisError(ErrorCode.ATTACHMENT_NOT_FOUND)
    if (
        attachment.state == AttachmentState.COMPLETE
        and carrying_envelope(attachment=attachment) is not None
    ):
        raise RelaisError(ErrorCode.CONFLICT, "A sent attachment is deleted with its message.")
    do_delete_attachment(attachment)


def do_delete_attachment(attachment: Attachment) -> None:
    """Row first, then objects: a crash in between leaves only unnamed objects, which
    the purge of stale prefixes removes."""
    names = list(attachment.parts.values_list("storage_name", flat=True))
    attachment_id = attachment.pk
    storage_name = attachment.storage_name
    attachment.delete()
    delete_quietly(names)
    delete_prefix(part_prefix(attachment_id))
    storage = attachment_storage()
    for name in {storage_name, blob_name(attachment_id)} - {""}:
        storage.delete(name)


def carrying_envelope(*, attachment: Attachment) -> Envelope | None:
    """The stored message that carries this attachment, if it was sent."""
    return Envelope.objects.filter(
        room_id=attachment.room_id,
        sender_device_id=attachment.uploader_device_id,
        client_id=attachment.message_id,
    ).first()


def access_download(*, attachment_id: str, device_id: int, practitioner_id: str) -> Attachment:
    """A complete blob the caller may fetch: the uploading device may always fetch its
    own; anyone else must read the blob's room (a member, or the organisation whose
    archiver the room names: ``access_reader``) with a history that includes the message
    carrying it. ATTACHMENT_NOT_FOUND otherwise, whatever the reason."""
    attachment = Attachment.objects.filter(pk=attachment_id, state=AttachmentState.COMPLETE).first()
    if attachment is None:
        raise RelaisError(ErrorCode.ATTACHMENT_NOT_FOUND)
    try:
        reader = access_reader(room_id=attachment.room_id, practitioner_id=practitioner_id)
    except RelaisError:
        raise RelaisError(ErrorCode.ATTACHMENT_NOT_FOUND) from None
    if attachment.uploader_device_id == device_id:
        return attachment
    envelope = carrying_envelope(attachment=attachment)
    if envelope is None or envelope.seq <= reader.after_seq:
        raise RelaisError(ErrorCode.ATTACHMENT_NOT_FOUND)
    return attachment
