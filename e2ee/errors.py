"""Why a cryptographic check failed, as a stable code a client can branch on."""

from __future__ import annotations

from enum import StrEnum


class CryptoErrorCode(StrEnum):
    BAD_ENCODING = "bad_encoding"  # not canonical JSON, wrong field set, bad base64url
    BAD_SIGNATURE = "bad_signature"  # an Ed25519 signature does not verify
    BAD_PROOF = "bad_proof"  # a Merkle inclusion or consistency proof does not verify
    BAD_CHAIN = "bad_chain"  # a room-state event does not follow its predecessor
    NOT_AUTHORISED = "not_authorised"  # the author may not make this change
    UNKNOWN_DEVICE = "unknown_device"  # the device is not in the room (at that epoch)
    UNKNOWN_KEY = "unknown_key"  # no sender key with this id for this device
    STALE_KEY = "stale_key"  # the sender key predates a removal it must not survive
    REPLAY = "replay"  # this message index was already used (or is too old)
    TOO_FAR_AHEAD = "too_far_ahead"  # the index skips more messages than the window
    DECRYPT_FAILED = "decrypt_failed"  # the AEAD refused the ciphertext
    REVOKED = "revoked"  # the device key was revoked in the transparency log
    WRONG_RECIPIENT = "wrong_recipient"  # a key share meant for another device
    FUTURE_EPOCH = "future_epoch"  # refers to a room state not seen yet: fetch it first
    EXPIRED_KEY = "expired_key"  # a key-agreement key past its expiry
    STALE_STATE = "stale_state"  # sent from a room state older than a removal known here
    ROLLBACK = "rollback"  # the server showed a shorter or different chain than before


class CryptoError(Exception):
    """A refused input. ``code`` is stable; the message is for people and logs."""

    def __init__(self, code: CryptoErrorCode, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
