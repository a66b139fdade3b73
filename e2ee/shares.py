"""Sharing a sender key with one device: signed, then sealed with HPKE
(docs/protocol.md, "Key shares").

HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
AES-256-GCM, single-shot, ``info = "relais/v2/hpke/sender-key-share"``, sealed to the
recipient's *current* key-agreement key (``e2ee.kex``: it rotates, so a copy of an old
key store opens no new share). Base mode does not authenticate the sender, so the
sealed plaintext is a share signed by the sender device: ``{"share": body, "sig"}``
with the signature over ``"relais/v2/sender-key-share" || 0x00 || canonical(body)``.
The body names the recipient device, so a share cannot be re-sealed to another device
unnoticed. It may also carry the room's current profile key (``e2ee.profile``).

The to-device message the server queues is canonical JSON
``{"v":2, "type":"sender_key_share", "kex_serial": n, "ct": base64url(enc || ciphertext)}``
where ``kex_serial`` names the recipient's key-agreement key it was sealed to.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from e2ee import labels
from e2ee.encoding import (
    JsonObject,
    b64u,
    canonical_json,
    expect_int,
    expect_object,
    expect_str,
    parse_canonical,
    unb64u,
)
from e2ee.envelopes import KEY_ID_BYTES, InboundSession, OutboundSession
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.kex import KexKey
from e2ee.keys import SIGNATURE_BYTES, DeviceKeyPair, verify
from e2ee.profile import KEY_BYTES as PROFILE_KEY_BYTES
from e2ee.profile import KEY_ID_BYTES as PROFILE_KEY_ID_BYTES
from e2ee.profile import ProfileKey
from e2ee.ratchet import CHAIN_KEY_BYTES
from e2ee.state import ROOM_ID_BYTES, DeviceRef, RoomState

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
MAX_SHARE_BYTES = 4096

_BODY_KEYS = {
    "v",
    "type",
    "room",
    "epoch",
    "sender",
    "recipient",
    "key_id",
    "index",
    "chain_key",
    "profile_key",
}
VERSION = 2


def share_body(
    session: OutboundSession,
    *,
    epoch: int,
    recipient: DeviceRef,
    profile_key: ProfileKey | None = None,
) -> JsonObject:
    """The share of ``session`` at its current index, made at room ``epoch``."""
    return {
        "v": VERSION,
        "type": "sender_key",
        "room": session.room,
        "epoch": epoch,
        "sender": {"national_id": session.sender[0], "device": session.sender[1]},
        "recipient": {"national_id": recipient[0], "device": recipient[1]},
        "key_id": b64u(session.key_id),
        "index": session.index,
        "chain_key": b64u(session.chain_key),
        "profile_key": (
            {"key_id": b64u(profile_key.key_id), "key": b64u(profile_key.key)}
            if profile_key
            else None
        ),
    }


def seal_share(
    *,
    session: OutboundSession,
    epoch: int,
    key_pair: DeviceKeyPair,
    recipient: DeviceRef,
    kex: KexKey,
    profile_key: ProfileKey | None = None,
) -> bytes:
    """The to-device message carrying ``session`` (and the room's profile key, if
    given) to ``recipient``, sealed to its verified current key-agreement key ``kex``."""
    if (kex.national_id, kex.device) != recipient:
        raise ValueError("the key-agreement key belongs to another device")
    body = share_body(session, epoch=epoch, recipient=recipient, profile_key=profile_key)
    signed = canonical_json(
        {"share": body, "sig": b64u(key_pair.sign(labels.SENDER_KEY_SHARE, body))}
    )
    sealed = SUITE.encrypt(
        signed, X25519PublicKey.from_public_bytes(kex.kex_key), info=labels.HPKE_INFO_SENDER_KEY
    )
    return canonical_json(
        {"v": VERSION, "type": "sender_key_share", "kex_serial": kex.serial, "ct": b64u(sealed)}
    )


@dataclass(frozen=True, slots=True)
class OpenedShare:
    """A decrypted share whose signature is not checked yet (that needs the room state)."""

    body: JsonObject
    signature: bytes

    @property
    def room(self) -> str:
        room: str = self.body["room"]
        return room

    @property
    def epoch(self) -> int:
        epoch: int = self.body["epoch"]
        return epoch

    @property
    def sender(self) -> DeviceRef:
        return (self.body["sender"]["national_id"], self.body["sender"]["device"])

    @property
    def profile_key(self) -> ProfileKey | None:
        value = self.body["profile_key"]
        if value is None:
            return None
        return ProfileKey(
            key_id=unb64u(value["key_id"], length=PROFILE_KEY_ID_BYTES),
            key=unb64u(value["key"], length=PROFILE_KEY_BYTES),
        )


def share_kex_serial(message: bytes) -> int:
    """Which of the recipient's key-agreement keys a share was sealed to."""
    outer = expect_object(
        parse_canonical(message, max_bytes=MAX_SHARE_BYTES), {"v", "type", "kex_serial", "ct"}
    )
    if outer["v"] != VERSION or outer["type"] != "sender_key_share":
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a sender key share")
    return expect_int(outer["kex_serial"], field="kex_serial", minimum=1)


def open_share(*, message: bytes, kex_private: X25519PrivateKey, me: DeviceRef) -> OpenedShare:
    """Decrypt a to-device key share addressed to this device with the private half of
    the key-agreement key it names (``share_kex_serial``). Raises CryptoError."""
    share_kex_serial(message)
    outer = parse_canonical(message, max_bytes=MAX_SHARE_BYTES)
    try:
        plaintext = SUITE.decrypt(
            unb64u(outer["ct"], field="ct"), kex_private, info=labels.HPKE_INFO_SENDER_KEY
        )
    except (InvalidTag, ValueError):
        raise CryptoError(CryptoErrorCode.DECRYPT_FAILED, "HPKE refused the share") from None
    signed = expect_object(parse_canonical(plaintext, max_bytes=MAX_SHARE_BYTES), {"share", "sig"})
    body = expect_object(signed["share"], _BODY_KEYS, field="share")
    if body["v"] != VERSION or body["type"] != "sender_key":
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a version 2 sender key")
    unb64u(body["room"], length=ROOM_ID_BYTES, field="room")
    expect_int(body["epoch"], field="epoch")
    expect_int(body["index"], field="index")
    unb64u(body["key_id"], length=KEY_ID_BYTES, field="key_id")
    unb64u(body["chain_key"], length=CHAIN_KEY_BYTES, field="chain_key")
    if body["profile_key"] is not None:
        profile = expect_object(body["profile_key"], {"key_id", "key"}, field="profile_key")
        unb64u(profile["key_id"], length=PROFILE_KEY_ID_BYTES, field="profile_key.key_id")
        unb64u(profile["key"], length=PROFILE_KEY_BYTES, field="profile_key.key")
    for name in ("sender", "recipient"):
        ref = expect_object(body[name], {"national_id", "device"}, field=name)
        expect_str(ref["national_id"], field=f"{name}.national_id", max_length=32)
        expect_int(ref["device"], field=f"{name}.device", minimum=1)
    recipient = (body["recipient"]["national_id"], body["recipient"]["device"])
    if recipient != me:
        raise CryptoError(CryptoErrorCode.WRONG_RECIPIENT, "share addressed to another device")
    return OpenedShare(body=body, signature=unb64u(signed["sig"], length=SIGNATURE_BYTES))


def accept_share(share: OpenedShare, *, state: RoomState) -> InboundSession:
    """Check the share against the verified room state: the sender is not an archiver
    (an archiver never sends), was a room device at the share's epoch and signed it;
    this device was one too. Raises CryptoError."""
    if share.room != state.room:
        raise CryptoError(CryptoErrorCode.BAD_CHAIN, "share of another room")
    if share.epoch > state.epoch:
        raise CryptoError(CryptoErrorCode.FUTURE_EPOCH, f"epoch {share.epoch}")
    if share.sender in state.archivers:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the archiver does not send")
    sender_key = state.device_at(*share.sender, share.epoch)
    if sender_key is None:
        raise CryptoError(CryptoErrorCode.UNKNOWN_DEVICE, "sender not in the room at that epoch")
    verify(sender_key, share.signature, labels.SENDER_KEY_SHARE, share.body)
    return InboundSession(
        room=share.room,
        sender=share.sender,
        key_id=unb64u(share.body["key_id"], length=KEY_ID_BYTES),
        chain_key=unb64u(share.body["chain_key"], length=CHAIN_KEY_BYTES),
        next_index=share.body["index"],
        epoch=share.epoch,
    )
