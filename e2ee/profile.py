"""The encrypted room profile (docs/protocol.md §10.5, ``set_profile``).

A care-team or téléexpertise room carries a profile — its title, the patient it is
about, notes — that every member device (and the room's archiver) must show, and that
the server must never read. An admin encrypts each version under a fresh 32-byte
*profile key* and puts only the ciphertext in a signed ``set_profile`` state event; the
key travels inside sender-key shares (``e2ee.shares``), so it reaches exactly the
devices that receive the room's keys. A member removed before an edit never gets the
new key. Between the devices of one practitioner it also travels with the history keys
(``client.history``: the transfer to a linked device, the recovery backup), checked
there against the room's verified state before use.

``ct = nonce(12) || AES-256-GCM(profile key, nonce, canonical(profile), AAD)`` with
``AAD = "relais/v2/room-profile" || 0x00 || canonical({"room", "version", "key_id"})``,
so a ciphertext cannot be replayed as another room's or another version's profile.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from e2ee import labels
from e2ee.encoding import JsonObject, b64u, canonical_json, parse_canonical, signing_input
from e2ee.errors import CryptoError, CryptoErrorCode

KEY_ID_BYTES = 16
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_PROFILE_PLAINTEXT = 12 * 1024


@dataclass(frozen=True, slots=True)
class ProfileKey:
    key_id: bytes
    key: bytes

    @classmethod
    def generate(cls) -> ProfileKey:
        return cls(key_id=secrets.token_bytes(KEY_ID_BYTES), key=secrets.token_bytes(KEY_BYTES))


def _aad(room: str, version: int, key_id: bytes) -> bytes:
    return signing_input(
        labels.PROFILE_AAD, {"room": room, "version": version, "key_id": b64u(key_id)}
    )


def encrypt_profile(*, room: str, version: int, key: ProfileKey, profile: JsonObject) -> bytes:
    plaintext = canonical_json(profile)
    if len(plaintext) > MAX_PROFILE_PLAINTEXT:
        raise ValueError(f"a room profile is at most {MAX_PROFILE_PLAINTEXT} bytes")
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key.key).encrypt(nonce, plaintext, _aad(room, version, key.key_id))


def decrypt_profile(*, room: str, version: int, key: ProfileKey, ciphertext: bytes) -> JsonObject:
    nonce, sealed = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
    try:
        plaintext = AESGCM(key.key).decrypt(nonce, sealed, _aad(room, version, key.key_id))
    except (InvalidTag, ValueError):
        raise CryptoError(CryptoErrorCode.DECRYPT_FAILED, "room profile") from None
    return parse_canonical(plaintext, max_bytes=MAX_PROFILE_PLAINTEXT)
