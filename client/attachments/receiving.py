"""Receiving an attachment: download, verify, decrypt, unpad, save — all or nothing.

The plaintext is written to a hidden temporary file beside the destination and renamed
into place only when every chunk authenticated, the blob's SHA-256 and size match the
descriptor, and the padding after the file's ``size`` bytes is all zero bytes and as
long as the rule says. On any failure the temporary file is removed: a tampered or
truncated attachment never leaves a partial file behind.

A photo's thumbnail needs no download: it is in the descriptor (``open_thumbnail``).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path

from client.attachments.descriptor import AttachmentDescriptor, decode_key
from client.attachments.errors import AttachmentError, ClientCode
from client.attachments.padding import Unpadder
from client.attachments.stream import StreamDecryptor
from client.attachments.transfer import AttachmentApi, DownloadResult, Progress


def _verify(result: DownloadResult, expected: AttachmentDescriptor) -> None:
    if result.size != expected.ciphertext_size:
        raise AttachmentError(ClientCode.SIZE_MISMATCH)
    if not hmac.compare_digest(result.sha256, expected.sha256):
        raise AttachmentError(ClientCode.HASH_MISMATCH)


async def receive_attachment(
    api: AttachmentApi,
    descriptor: AttachmentDescriptor,
    destination: Path,
    *,
    progress: Progress | None = None,
) -> Path:
    """Fetch the attachment into ``destination`` (replaced if it exists); returns it."""
    decryptor = StreamDecryptor(file_key=decode_key(descriptor.key))
    unpadder = Unpadder(descriptor.size)
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.part")
    try:
        # Readable by the owner only: it is health data.
        created = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(created, "wb") as output:

            def write(plain: bytes) -> None:
                output.write(unpadder.update(plain))

            result = await api.download_blob(
                descriptor.blob,
                size=descriptor.ciphertext_size,
                sink=decryptor,
                write=write,
                progress=progress,
            )
            _verify(result, descriptor)
            write(decryptor.finalize())
            unpadder.finish()
            output.flush()
            os.fsync(output.fileno())
        temporary.replace(destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return destination


def open_thumbnail(descriptor: AttachmentDescriptor) -> bytes:
    """The thumbnail of a photo attachment (a small JPEG or WebP), carried in the
    descriptor and checked when it was parsed; no network."""
    if descriptor.thumbnail is None:
        raise AttachmentError(ClientCode.BAD_DESCRIPTOR, "This attachment has no thumbnail.")
    return descriptor.thumbnail.image
