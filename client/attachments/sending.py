"""Sending an attachment: clean (photos), check the type, encrypt, upload, describe.

The result is an :class:`AttachmentDescriptor` for the caller to put inside the message
it then sends with the same ``message_id`` into the same room (docs/attachments.md,
"How a message carries an attachment").
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from client.attachments.descriptor import (
    AttachmentDescriptor,
    build_descriptor,
    thumbnail_of,
)
from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.images import ImageOptions, ProcessedImage, process_image
from client.attachments.mime import SNIFF_BYTES, check_document_type, is_image_type
from client.attachments.padding import ZeroPadded
from client.attachments.stream import encrypt_file, new_file_key
from client.attachments.transfer import AttachmentApi, Progress

# Encrypted documents up to this size stay in memory; larger ones spill to a temp file.
SPOOL_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DOCUMENT_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EncryptedBlob:
    """A blob ready to upload: ciphertext in ``file`` (at position 0) and what the
    descriptor needs. ``plaintext_size`` is the file's size; the blob holds it followed
    by zero bytes up to ``padded_size(plaintext_size)``. The caller closes ``file``."""

    file: BinaryIO
    key: bytes
    sha256: str
    ciphertext_size: int
    plaintext_size: int


def encrypt_to_spool(source: BinaryIO) -> EncryptedBlob:
    """Pad and encrypt ``source`` with a fresh key into a spooled temporary file."""
    key = new_file_key()
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned
    padded = ZeroPadded(source)
    try:
        result = encrypt_file(padded, spool, file_key=key)  # type: ignore[arg-type]
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return EncryptedBlob(
        file=spool,  # type: ignore[arg-type]
        key=key,
        sha256=result.sha256,
        ciphertext_size=result.ciphertext_size,
        plaintext_size=padded.size,
    )


@dataclass(frozen=True, slots=True)
class PreparedPhoto:
    """A cleaned photo, encrypted; its thumbnail stays in ``image`` and travels in the
    message."""

    image: ProcessedImage
    main: EncryptedBlob


def prepare_photo(
    source: bytes | BinaryIO | Path, *, declared_mime: str, options: ImageOptions | None = None
) -> PreparedPhoto:
    """The whole client pipeline of a photo, without the network: orient, strip, resize,
    re-encode, thumbnail, pad and encrypt. CPU-bound (run it in a thread from async code)."""
    image = process_image(source, declared_mime=declared_mime, options=options)
    return PreparedPhoto(image=image, main=encrypt_to_spool(io.BytesIO(image.data)))


def prepare_document(
    source: bytes | Path, *, declared_mime: str, max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
) -> EncryptedBlob:
    """Check a non-image file's type against its content; pad and encrypt it."""
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if size > max_bytes:
        raise AttachmentError(ClientCode.FILE_TOO_LARGE, f"{size} bytes; at most {max_bytes}.")
    with io.BytesIO(source) if isinstance(source, bytes) else source.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
        check_document_type(declared_mime=declared_mime, head=head, complete=len(head) == size)
        stream.seek(0)
        return encrypt_to_spool(stream)


async def _upload(
    api: AttachmentApi,
    blob: EncryptedBlob,
    *,
    room: int,
    message_id: str,
    progress: Progress | None,
) -> str:
    try:
        return await api.upload_blob(
            blob.file,
            size=blob.ciphertext_size,
            sha256=blob.sha256,
            room=room,
            message_id=message_id,
            progress=progress,
        )
    finally:
        blob.file.close()


async def send_attachment(
    api: AttachmentApi,
    *,
    room: int,
    message_id: str,
    source: bytes | Path,
    mime: str,
    name: str | None = None,
    image_options: ImageOptions | None = None,
    progress: Progress | None = None,
) -> AttachmentDescriptor:
    """Prepare, encrypt and upload a file meant for the message ``message_id`` in
    ``room``; returns the descriptor that message must carry (encrypted).

    Images (by declared type) go through the photo pipeline; their thumbnail goes into
    the descriptor, not to the server. Any other file is checked against its type and
    sent as it is. Either way one padded blob is uploaded.
    """
    declared = mime.strip().lower()
    if is_image_type(declared):
        photo = await asyncio.to_thread(
            prepare_photo, source, declared_mime=declared, options=image_options
        )
        image = photo.image
        try:
            thumbnail = (
                None
                if image.thumbnail is None
                else thumbnail_of(
                    image.thumbnail,
                    mime=image.thumbnail_mime,
                    width=image.thumbnail_width,
                    height=image.thumbnail_height,
                )
            )
        except BaseException:
            photo.main.file.close()
            raise
        blob_id = await _upload(
            api, photo.main, room=room, message_id=message_id, progress=progress
        )
        return build_descriptor(
            blob=blob_id,
            key=photo.main.key,
            sha256=photo.main.sha256,
            size=photo.main.plaintext_size,
            mime=image.mime,
            name=name,
            width=image.width,
            height=image.height,
            thumbnail=thumbnail,
        )
    document = await asyncio.to_thread(prepare_document, source, declared_mime=declared)
    blob_id = await _upload(api, document, room=room, message_id=message_id, progress=progress)
    return build_descriptor(
        blob=blob_id,
        key=document.key,
        sha256=document.sha256,
        size=document.plaintext_size,
        mime=declared,
        name=name,
    )
