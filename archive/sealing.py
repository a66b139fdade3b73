"""Sealing what the archiver keeps on disk: AES-256-GCM (``cryptography``) under a key
kept in the archiver's encrypted key store, with a fresh random 96-bit nonce per value
and the value's place (table and row) as associated data, so a sealed value cannot be
moved to another row unnoticed. Nothing decrypted is written to disk."""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

LABEL = b"relais/v1/archive-outbox"
KEY_BYTES = 32
NONCE_BYTES = 12
STORE_ENTRY = "archive_outbox_key"


class SealError(Exception):
    """A sealed value does not open (another key, or damaged)."""


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def outbox_key(store_data: dict[str, object]) -> bytes:
    """The outbox key held in the key store's document (made on first use; the caller
    saves the store)."""
    value = store_data.get(STORE_ENTRY)
    if not isinstance(value, str):
        value = new_key().hex()
        store_data[STORE_ENTRY] = value
    key = bytes.fromhex(value)
    if len(key) != KEY_BYTES:
        raise SealError("the outbox key in the key store is damaged")
    return key


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("an outbox key is 32 bytes")
        self._aead = AESGCM(key)

    @staticmethod
    def _context(place: str) -> bytes:
        return LABEL + b"\x00" + place.encode("ascii")

    def seal(self, place: str, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, self._context(place))

    def open(self, place: str, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], self._context(place)
            )
        except (InvalidTag, ValueError):
            raise SealError(f"the outbox value {place} does not open") from None
