"""Streaming authenticated encryption of one file: the STREAM construction.

The format (docs/protocol.md, "Attachments", and docs/attachments.md for the reasons) is
the online AEAD of Hoang, Reyhanitabar, Rogaway and Vizár, laid out as age and Tink's
AES-GCM-HKDF streaming do::

    header   = "RLAT" || 0x01 || salt (16 random bytes)                       21 bytes
    key      = HKDF-SHA256(ikm=file key, salt=salt, info=PAYLOAD_INFO, 32 bytes)
    chunk i  = AES-256-GCM(key, nonce = i as 11 bytes big-endian || last flag,
                           plaintext chunk i (64 KiB, the last one 0..64 KiB),
                           associated data = header)                       ≤ 65,552 bytes
    blob     = header || chunk 0 || chunk 1 || ... || last chunk

The counter in the nonce detects reordered, dropped or duplicated chunks; the last-chunk
flag detects truncation at a chunk boundary and appended data; the header is the
associated data of every chunk, so it cannot be altered either. Only the final chunk may
be shorter than 64 KiB, and it may be empty only when the whole file is empty, so every
plaintext has exactly one encoding.

Nothing here holds more than two chunks in memory, whatever the file's size.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from client.attachments.errors import AttachmentError, ClientCode

MAGIC = b"RLAT"
VERSION = 1
SALT_BYTES = 16
HEADER_BYTES = len(MAGIC) + 1 + SALT_BYTES
KEY_BYTES = 32
TAG_BYTES = 16
CHUNK_BYTES = 64 * 1024
CIPHER_CHUNK_BYTES = CHUNK_BYTES + TAG_BYTES
PAYLOAD_INFO = b"relais attachment v1 payload key"
SCHEME: Final = "aes256gcm-hkdf-sha256-stream64k"
_LAST = b"\x01"
_NOT_LAST = b"\x00"
_COUNTER_BYTES = 11


class Readable(Protocol):
    """What ``encrypt_file`` reads from: a binary file, or a reader that pads one."""

    def read(self, limit: int, /) -> bytes: ...


def new_file_key() -> bytes:
    """A fresh random 256-bit key; one per file, never reused."""
    return secrets.token_bytes(KEY_BYTES)


def ciphertext_size(plaintext_size: int) -> int:
    """The exact blob size for a plaintext of ``plaintext_size`` bytes (≥ 0)."""
    if plaintext_size < 0:
        raise ValueError("plaintext_size must be >= 0")
    chunks = max(1, -(-plaintext_size // CHUNK_BYTES))
    return HEADER_BYTES + plaintext_size + chunks * TAG_BYTES


def plaintext_size(size_of_ciphertext: int) -> int:
    """The plaintext size a well-formed blob of this size holds; ValueError if none does."""
    body = size_of_ciphertext - HEADER_BYTES
    if body < TAG_BYTES:
        raise ValueError("too short to be a blob")
    full, rest = divmod(body, CIPHER_CHUNK_BYTES)
    if rest == 0:
        return full * CHUNK_BYTES
    if rest < TAG_BYTES or (rest == TAG_BYTES and full > 0):
        raise ValueError("no plaintext has this blob size")
    return full * CHUNK_BYTES + rest - TAG_BYTES


def _nonce(index: int, *, last: bool) -> bytes:
    return index.to_bytes(_COUNTER_BYTES, "big") + (_LAST if last else _NOT_LAST)


def _payload_cipher(file_key: bytes, salt: bytes) -> AESGCM:
    if len(file_key) != KEY_BYTES:
        raise ValueError("a file key is 32 bytes")
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=PAYLOAD_INFO).derive(
        file_key
    )
    return AESGCM(key)


def make_header(salt: bytes) -> bytes:
    if len(salt) != SALT_BYTES:
        raise ValueError("the salt is 16 bytes")
    return MAGIC + bytes([VERSION]) + salt


class StreamEncryptor:
    """Encrypts one file fed in pieces of any size.

    ``update`` returns the ciphertext that is ready (the header first); ``finalize``
    returns the rest and must be called exactly once. The salt is random unless given
    (given only to reproduce test vectors).
    """

    def __init__(self, *, file_key: bytes, salt: bytes | None = None) -> None:
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        self.header = make_header(salt)
        self._cipher = _payload_cipher(file_key, salt)
        self._buffer = bytearray()
        self._index = 0
        self._header_sent = False
        self._finished = False

    def _start(self) -> bytes:
        if self._header_sent:
            return b""
        self._header_sent = True
        return self.header

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._finished:
            raise ValueError("finalize() was already called")
        self._buffer += data
        out = bytearray(self._start())
        # Hold back at least one byte: the chunk that turns out to be the last must be
        # encrypted with the last flag, which is known only at finalize().
        consumed = 0
        with memoryview(self._buffer) as view:
            while len(view) - consumed > CHUNK_BYTES:
                with view[consumed : consumed + CHUNK_BYTES] as chunk:
                    out += self._cipher.encrypt(_nonce(self._index, last=False), chunk, self.header)
                self._index += 1
                consumed += CHUNK_BYTES
        del self._buffer[:consumed]
        return bytes(out)

    def finalize(self) -> bytes:
        if self._finished:
            raise ValueError("finalize() was already called")
        self._finished = True
        out = self._start() + self._cipher.encrypt(
            _nonce(self._index, last=True), bytes(self._buffer), self.header
        )
        self._buffer.clear()
        return out


class StreamDecryptor:
    """Decrypts one blob fed in pieces of any size; the inverse of StreamEncryptor.

    ``update`` returns plaintext only from chunks that authenticated. ``finalize`` must be
    called at the end of the blob: it authenticates the last chunk, which is how
    truncation is detected. Any failure raises AttachmentError(decrypt_failed) and the
    decryptor is then unusable.
    """

    def __init__(self, *, file_key: bytes) -> None:
        if len(file_key) != KEY_BYTES:
            raise ValueError("a file key is 32 bytes")
        self._file_key = file_key
        self._cipher: AESGCM | None = None
        self._header = b""
        self._buffer = bytearray()
        self._index = 0
        self._failed = False
        self._finished = False

    def _fail(self, why: str) -> AttachmentError:
        self._failed = True
        return AttachmentError(ClientCode.DECRYPT_FAILED, why)

    def _read_header(self) -> None:
        header = bytes(self._buffer[:HEADER_BYTES])
        if header[: len(MAGIC)] != MAGIC or header[len(MAGIC)] != VERSION:
            raise self._fail("Unknown blob format.")
        self._header = header
        self._cipher = _payload_cipher(self._file_key, header[len(MAGIC) + 1 :])
        del self._buffer[:HEADER_BYTES]

    def _open(self, chunk: bytes | memoryview, *, last: bool) -> bytes:
        assert self._cipher is not None  # set by _read_header before any chunk
        try:
            plain = self._cipher.decrypt(_nonce(self._index, last=last), chunk, self._header)
        except InvalidTag:
            raise self._fail(f"Chunk {self._index} did not authenticate.") from None
        self._index += 1
        return plain

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._failed or self._finished:
            raise ValueError("this decryptor is finished")
        self._buffer += data
        if self._cipher is None:
            if len(self._buffer) < HEADER_BYTES:
                return b""
            self._read_header()
        out = bytearray()
        consumed = 0
        with memoryview(self._buffer) as view:
            # A full-size chunk may be the last one: keep it until more data or finalize().
            while len(view) - consumed > CIPHER_CHUNK_BYTES:
                with view[consumed : consumed + CIPHER_CHUNK_BYTES] as chunk:
                    out += self._open(chunk, last=False)
                consumed += CIPHER_CHUNK_BYTES
        del self._buffer[:consumed]
        return bytes(out)

    def finalize(self) -> bytes:
        if self._failed or self._finished:
            raise ValueError("this decryptor is finished")
        if self._cipher is None:
            raise self._fail("The blob is shorter than its header.")
        if len(self._buffer) < TAG_BYTES:
            raise self._fail("The blob is truncated.")
        plain = self._open(bytes(self._buffer), last=True)
        if not plain and self._index > 1:
            raise self._fail("Only an empty file ends with an empty chunk.")
        self._finished = True
        self._buffer.clear()
        return plain


@dataclass(frozen=True, slots=True)
class EncryptedStream:
    """What encrypting a file produced: sizes and the SHA-256 of the whole blob."""

    plaintext_size: int
    ciphertext_size: int
    sha256: str  # lowercase hex of SHA-256(blob)


def encrypt_file(
    source: Readable, destination: BinaryIO, *, file_key: bytes, read_size: int = 1 << 20
) -> EncryptedStream:
    """Encrypt ``source`` (read to its end) into ``destination``, hashing the blob as it
    is written. Memory stays bounded by ``read_size`` plus one chunk."""
    encryptor = StreamEncryptor(file_key=file_key)
    digest = hashlib.sha256()
    total_in = total_out = 0
    while block := source.read(read_size):
        total_in += len(block)
        out = encryptor.update(block)
        digest.update(out)
        destination.write(out)
        total_out += len(out)
    out = encryptor.finalize()
    digest.update(out)
    destination.write(out)
    total_out += len(out)
    return EncryptedStream(
        plaintext_size=total_in, ciphertext_size=total_out, sha256=digest.hexdigest()
    )


def encrypt_bytes(plaintext: bytes, *, file_key: bytes, salt: bytes | None = None) -> bytes:
    """The whole blob for a plaintext already in memory (small files, tests, vectors)."""
    encryptor = StreamEncryptor(file_key=file_key, salt=salt)
    return encryptor.update(plaintext) + encryptor.finalize()


def decrypt_chunks(blob_pieces: Iterable[bytes], *, file_key: bytes) -> Iterator[bytes]:
    """Plaintext pieces of a blob given as pieces; raises AttachmentError at the first
    piece that does not authenticate (so a consumer must discard what it already got)."""
    decryptor = StreamDecryptor(file_key=file_key)
    for piece in blob_pieces:
        if plain := decryptor.update(piece):
            yield plain
    if plain := decryptor.finalize():
        yield plain


def decrypt_bytes(blob: bytes, *, file_key: bytes) -> bytes:
    """The plaintext of a whole blob in memory; AttachmentError(decrypt_failed) if altered."""
    return b"".join(decrypt_chunks([blob], file_key=file_key))
