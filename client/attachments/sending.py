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
    VERSION,
    AttachmentDescriptor,
    ThumbnailDescriptor,
    encode_key,
)
from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.images import ImageOptions, ProcessedImage, process_image
from client.attachments.mime import SNIFF_BYTES, check_document_type, is_image_type
from client.attachments.stream import SCHEME, encrypt_file, new_file_key
from client.attachments.transfer import AttachmentApi, Progress

# Encrypted documents up to this size stay in memory; larger ones spill to a temp file.
SPOOL_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DOCUMENT_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EncryptedBlob:
    """A blob ready to upload: ciphertext in ``file`` (at position 0) and what the
    descriptor needs. The caller closes ``file``."""

    file: BinaryIO
    key: bytes
    sha256: str
    ciphertext_size: int
    plaintext_size: int


def encrypt_to_spool(source: BinaryIO) -> EncryptedBlob:
    """Encrypt ``source`` with a fresh key into a spooled temporary file."""
    key = new_file_key()
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned
    try:
        result = encrypt_file(source, spool, file_key=key)  # type: ignore[arg-type]
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return EncryptedBlob(
        file=spool,  # type: ignore[arg-type]
        key=key,
        sha256=result.sha256,
        ciphertext_size=result.ciphertext_size,
        plaintext_size=result.plaintext_size,
    )


@dataclass(frozen=True, slots=True)
class PreparedPhoto:
    image: ProcessedImage
    main: EncryptedBlob
    thumbnail: EncryptedBlob


def prepare_photo(
    source: bytes | BinaryIO | Path, *, declared_mime: str, options: ImageOptions | None = None
) -> PreparedPhoto:
    """The whole client pipeline of a photo, without the network: orient, strip, resize,
    re-encode, thumbnail, encrypt both. CPU-bound (run it in a thread from async code)."""
    image = process_image(source, declared_mime=declared_mime, options=options)
    return PreparedPhoto(
        image=image,
        main=encrypt_to_spool(io.BytesIO(image.data)),
        thumbnail=encrypt_to_spool(io.BytesIO(image.thumbnail)),
    )


def prepare_document(
    source: bytes | Path, *, declared_mime: str, max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
) -> EncryptedBlob:
    """Check a non-image file's type against its content and encrypt it as it is."""
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
    offset: int,
    total: int,
) -> str:
    def relay(done: int, _: int) -> None:
        if progress:
            progress(offset + done, total)

    return await api.upload_blob(
        blob.file,
        size=blob.ciphertext_size,
        sha256=blob.sha256,
        room=room,
        message_id=message_id,
        progress=relay,
    )


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

    Images (by declared type) go through the photo pipeline and get a thumbnail; any
    other file is checked against its type and sent as it is.
    """
    declared = mime.strip().lower()
    if is_image_type(declared):
        photo = await asyncio.to_thread(
            prepare_photo, source, declared_mime=declared, options=image_options
        )
        main, thumbnail = photo.main, photo.thumbnail
        total = main.ciphertext_size + thumbnail.ciphertext_size
        uploaded: list[str] = []
        try:
            thumbnail_id = await _upload(
                api,
                thumbnail,
                room=room,
                message_id=message_id,
                progress=progress,
                offset=0,
                total=total,
            )
            uploaded.append(thumbnail_id)
            main_id = await _upload(
                api,
                main,
                room=room,
                message_id=message_id,
                progress=progress,
                offset=thumbnail.ciphertext_size,
                total=total,
            )
        except BaseException:
            # The thumbnail alone would be a blob no message carries: withdraw it now.
            for attachment in uploaded:
                await api.abort_quietly(attachment)
            raise
        finally:
            main.file.close()
            thumbnail.file.close()
        return AttachmentDescriptor(
            v=VERSION,
            scheme=SCHEME,
            blob=main_id,
            key=encode_key(main.key),
            sha256=main.sha256,
            ciphertext_size=main.ciphertext_size,
            size=main.plaintext_size,
            mime=photo.image.mime,
            name=name,
            width=photo.image.width,
            height=photo.image.height,
            thumbnail=ThumbnailDescriptor(
                blob=thumbnail_id,
                key=encode_key(thumbnail.key),
                sha256=thumbnail.sha256,
                ciphertext_size=thumbnail.ciphertext_size,
                size=thumbnail.plaintext_size,
                mime=photo.image.thumbnail_mime,
                width=photo.image.thumbnail_width,
                height=photo.image.thumbnail_height,
            ),
        )
    document = await asyncio.to_thread(prepare_document, source, declared_mime=declared)
    try:
        blob_id = await _upload(
            api,
            document,
            room=room,
            message_id=message_id,
            progress=progress,
            offset=0,
            total=document.ciphertext_size,
        )
    finally:
        document.file.close()
    return AttachmentDescriptor(
        v=VERSION,
        scheme=SCHEME,
        blob=blob_id,
        key=encode_key(document.key),
        sha256=document.sha256,
        ciphertext_size=document.ciphertext_size,
        size=document.plaintext_size,
        mime=declared,
        name=name,
    )
