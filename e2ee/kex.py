"""Rotating key-agreement keys: post-compromise security for key shares
(docs/protocol.md §10.4, "Key-agreement keys").

Sender keys travel sealed to a device's X25519 key. If that key never changed, one
copy of a device's key store would open every future share sent to it. So each device
makes a new X25519 key on a schedule (``ROTATE_AFTER_MS``), publishes it signed by its
own Ed25519 signing key, and deletes the old private key once shares sealed to it have
had time to arrive. Senders seal to the newest key they can verify, and refuse a key
past its ``expires_at`` — so a server that keeps serving an old key (whose private half
a thief might hold) can do so only until it expires.

A published key is canonical JSON ``{"kex": body, "sig": b64u}`` with body
``{"v":2, "type":"kex_key", "national_id", "device", "kex_key", "serial", "created_at",
"expires_at"}`` and the signature over ``"relais/v2/kex-key" || 0x00 || canonical(body)``.
``serial`` counts up from 1; a receiver never goes back to a lower serial.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from e2ee import labels
from e2ee.encoding import (
    b64u,
    canonical_json,
    expect_int,
    expect_object,
    expect_str,
    parse_canonical,
    unb64u,
)
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import KEY_BYTES, SIGNATURE_BYTES, DeviceKeyPair, raw_public, verify

DAY_MS = 24 * 3600 * 1000
ROTATE_AFTER_MS = 7 * DAY_MS  # a device makes a new key-agreement key weekly
LIFETIME_MS = 30 * DAY_MS  # senders refuse a key older than this
KEEP_OLD_PRIVATE_MS = 2 * DAY_MS  # shares in flight may still use the previous key
MAX_KEX_BYTES = 1024


@dataclass(frozen=True, slots=True)
class KexKey:
    """A verified, published key-agreement key of one device."""

    national_id: str
    device: int
    kex_key: bytes
    serial: int
    created_at: int
    expires_at: int
    raw: bytes  # the signed document as published

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_at


def publish(
    *,
    key_pair: DeviceKeyPair,
    national_id: str,
    device: int,
    kex_private: X25519PrivateKey,
    serial: int,
    now_ms: int,
    lifetime_ms: int = LIFETIME_MS,
) -> bytes:
    """The signed document publishing ``kex_private``'s public key as key ``serial``."""
    body = {
        "v": 2,
        "type": "kex_key",
        "national_id": national_id,
        "device": device,
        "kex_key": b64u(raw_public(kex_private)),
        "serial": serial,
        "created_at": now_ms,
        "expires_at": now_ms + lifetime_ms,
    }
    return canonical_json({"kex": body, "sig": b64u(key_pair.sign(labels.KEX_KEY, body))})


def verify_kex(
    raw: bytes, *, national_id: str, device: int, sign_key: bytes, now_ms: int
) -> KexKey:
    """Check a published key-agreement key: the device's own signature, for this
    device, not expired, with a lifetime no longer than ``LIFETIME_MS``."""
    outer = expect_object(parse_canonical(raw, max_bytes=MAX_KEX_BYTES), {"kex", "sig"})
    body = expect_object(
        outer["kex"],
        {"v", "type", "national_id", "device", "kex_key", "serial", "created_at", "expires_at"},
        field="kex",
    )
    if body["v"] != 2 or body["type"] != "kex_key":
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a version 2 key-agreement key")
    verify(
        sign_key, unb64u(outer["sig"], length=SIGNATURE_BYTES, field="sig"), labels.KEX_KEY, body
    )
    if (expect_str(body["national_id"], field="national_id", max_length=32), body["device"]) != (
        national_id,
        device,
    ):
        raise CryptoError(CryptoErrorCode.WRONG_RECIPIENT, "key-agreement key of another device")
    created = expect_int(body["created_at"], field="created_at")
    expires = expect_int(body["expires_at"], field="expires_at")
    if not created < expires <= created + LIFETIME_MS:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "key-agreement key lifetime")
    key = KexKey(
        national_id=national_id,
        device=device,
        kex_key=unb64u(body["kex_key"], length=KEY_BYTES, field="kex_key"),
        serial=expect_int(body["serial"], field="serial", minimum=1),
        created_at=created,
        expires_at=expires,
        raw=raw,
    )
    if key.expired(now_ms):
        raise CryptoError(CryptoErrorCode.EXPIRED_KEY, f"key-agreement key of device {device}")
    return key
