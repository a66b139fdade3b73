"""Where blobs live: Django's storage API under the ``attachments`` alias.

The filesystem (under ``var/attachments``) by default, S3-compatible object storage
through django-storages as an option (docs/attachments.md). Only ``open``, ``save``,
``delete``, ``exists`` and ``listdir`` are used, so any Django storage backend fits.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
from collections.abc import Sequence
from typing import Protocol

from django.core.files import File
from django.core.files.storage import Storage, storages

READ_BYTES = 1 << 20


class Readable(Protocol):
    """What a part is read from: a request body stream or a file."""

    def read(self, size: int = ..., /) -> bytes: ...


def attachment_storage() -> Storage:
    return storages["attachments"]


def part_prefix(attachment_id: str) -> str:
    return f"partial/{attachment_id}"


def part_name(attachment_id: str, index: int) -> str:
    """A fresh name for each received copy of a part: a retried part never overwrites
    one that a concurrent request is still reading."""
    return f"{part_prefix(attachment_id)}/{index:06d}-{secrets.token_hex(4)}"


def blob_name(attachment_id: str) -> str:
    return f"blobs/{attachment_id[:2]}/{attachment_id}"


def save_exactly(name: str, content: Readable, *, length: int) -> str:
    """Store the next ``length`` bytes of ``content`` under ``name``; ValueError (and
    nothing stored) if ``content`` ends sooner."""
    data = content.read(length)
    if len(data) != length:
        raise ValueError("the content is shorter than announced")
    return attachment_storage().save(name, io.BytesIO(data))


def delete_quietly(names: Sequence[str]) -> None:
    storage = attachment_storage()
    for name in names:
        storage.delete(name)


def delete_prefix(prefix: str) -> int:
    """Delete every object under ``prefix`` (one level); returns how many."""
    storage = attachment_storage()
    try:
        _, files = storage.listdir(prefix)
    except FileNotFoundError:
        return 0
    for name in files:
        storage.delete(f"{prefix}/{name}")
    _remove_empty_directory(storage, prefix)
    return len(files)


def _remove_empty_directory(storage: Storage, prefix: str) -> None:
    """Object stores have no directories; a filesystem keeps empty ones unless told."""
    try:
        path = storage.path(prefix)
    except NotImplementedError:
        return
    with contextlib.suppress(OSError):
        os.rmdir(path)


class _HashingConcatenation(io.RawIOBase):
    """Reads stored parts one after the other, hashing what goes through."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = list(names)
        self._current: File[bytes] | None = None
        self.digest = hashlib.sha256()
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            if self._current is None:
                if not self._names:
                    return 0
                self._current = attachment_storage().open(self._names.pop(0), "rb")
            data = self._current.read(len(buffer))
            if data:
                buffer[: len(data)] = data
                self.digest.update(data)
                self.total += len(data)
                return len(data)
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


def assemble(name: str, part_names: Sequence[str]) -> tuple[str, str, int]:
    """Concatenate stored parts into the blob ``name``, streaming; returns the stored
    name, the SHA-256 (hex) and the size of what was written."""
    source = _HashingConcatenation(part_names)
    with io.BufferedReader(source, READ_BYTES) as reader:
        stored = attachment_storage().save(name, File(reader, name=name))
    return stored, source.digest.hexdigest(), source.total
