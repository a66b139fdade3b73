"""Message envelopes and the sender-key sessions that make and open them
(docs/protocol.md, "Envelopes").

An envelope is canonical JSON::

    {"v":2, "type":"envelope", "room", "epoch", "state", "sender":{"national_id","device"},
     "key_id", "index", "log", "ct", "sig"}

* ``ct`` = AES-256-GCM(message key ``index`` of sender key ``key_id``, derived nonce,
  plaintext, AAD) where AAD = ``"relais/v2/envelope-aad" || 0x00 || canonical(header)``
  and the header is every field except ``ct`` and ``sig``. So a ciphertext moved to
  another room, epoch, state, sender or index does not decrypt.
* ``sig`` = Ed25519 by the sender device over ``"relais/v2/envelope" || 0x00 ||
  canonical(every field except sig)``. Members share the chain key, so without the
  signature any member could forge a message in another member's name.
* ``log`` is the newest key-transparency log head the sender accepted (``size`` and
  ``root``), so receivers can compare views of the log (gossip), or null.
* The plaintext is canonical JSON with a ``type``, the sender's own sequence number
  ``seq`` in this room (1, 2, 3… across all its sender keys) and its clock ``ts``, so a
  receiver sees when the server reordered or dropped a sender's messages; and a ``pad``
  of ``"0"`` characters that makes its length a multiple of 128 bytes (lengths leak
  less).

Receiving checks, in order: encoding; room; the epoch is known and its state hash
matches; the sender is not the room's archiver (an archiver never sends) and was a room
device at that epoch; the signature; a sender key with
that id from that device; the key was shared no later than the envelope's epoch and no
device left in between (else the sender failed to rotate); the index was never used
(replays and duplicates refused) and skips at most ``MAX_SKIP`` messages; the AEAD.
The ratchet moves only after all of that succeeded.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from e2ee import labels
from e2ee.encoding import (
    JsonObject,
    b64u,
    canonical_json,
    expect_int,
    expect_object,
    expect_str,
    parse_canonical,
    signing_input,
    unb64u,
)
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import SIGNATURE_BYTES, DeviceKeyPair, verify
from e2ee.merkle import HASH_BYTES
from e2ee.ratchet import CHAIN_KEY_BYTES, MessageKey, message_key, next_chain_key
from e2ee.state import ROOM_ID_BYTES, DeviceRef, RoomState

KEY_ID_BYTES = 16
PAD_BLOCK = 128
MAX_SKIP = 1000  # messages an envelope may jump ahead of the last one received
MAX_SKIPPED_KEYS = 2000  # message keys kept for late (out-of-order) envelopes
MAX_ENVELOPE_BYTES = 48 * 1024

_HEADER_KEYS = {"v", "type", "room", "epoch", "state", "sender", "key_id", "index", "log"}
VERSION = 2
_ENVELOPE_KEYS = _HEADER_KEYS | {"ct", "sig"}


_RESERVED = ("pad", "seq", "ts")


def pad_content(content: JsonObject, *, seq: int, ts: int) -> bytes:
    """Canonical JSON of ``content`` with the sender's ``seq`` and ``ts``, plus a ``pad``
    making it a multiple of 128 bytes."""
    if any(key in content for key in _RESERVED) or not isinstance(content.get("type"), str):
        raise ValueError("content needs a string 'type' and no 'pad', 'seq' or 'ts'")
    full = {**content, "seq": seq, "ts": ts}
    unpadded = len(canonical_json({**full, "pad": ""}))
    return canonical_json({**full, "pad": "0" * (-unpadded % PAD_BLOCK)})


def unpad_content(plaintext: bytes) -> tuple[JsonObject, int, int]:
    """The content without ``pad``, ``seq`` and ``ts``, then ``seq`` and ``ts``."""
    content = parse_canonical(plaintext, max_bytes=MAX_ENVELOPE_BYTES)
    pad = content.pop("pad", None)
    seq = content.pop("seq", None)
    ts = content.pop("ts", None)
    if not isinstance(pad, str) or pad.strip("0") or not isinstance(content.get("type"), str):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "malformed message content")
    return content, expect_int(seq, field="seq", minimum=1), expect_int(ts, field="ts")


def aad(header: JsonObject) -> bytes:
    return signing_input(labels.ENVELOPE_AAD, header)


@dataclass
class OutboundSession:
    """This device's current sender key in one room."""

    room: str
    sender: DeviceRef
    key_id: bytes
    chain_key: bytes  # the chain key of message ``index``
    index: int
    epoch: int  # the room epoch when this key was made (and first shared)
    created_at_ms: int
    shared_with: set[DeviceRef] = field(default_factory=set)

    @classmethod
    def create(cls, *, room: str, sender: DeviceRef, epoch: int, now_ms: int) -> OutboundSession:
        return cls(
            room=room,
            sender=sender,
            key_id=secrets.token_bytes(KEY_ID_BYTES),
            chain_key=secrets.token_bytes(CHAIN_KEY_BYTES),
            index=0,
            epoch=epoch,
            created_at_ms=now_ms,
        )

    def needs_rotation(self, *, state: RoomState, now_ms: int) -> bool:
        """A device left since the key was made, or the policy's message count or age
        is reached."""
        policy = state.policy
        return (
            state.removed_between(self.epoch, state.epoch)
            or self.index >= policy.rotate_after_messages
            or now_ms - self.created_at_ms >= policy.rotate_after_seconds * 1000
        )

    def encrypt(
        self,
        *,
        state: RoomState,
        key_pair: DeviceKeyPair,
        content: JsonObject,
        seq: int,
        ts: int,
        log: JsonObject | None = None,
    ) -> bytes:
        """Encrypt and sign ``content`` (the sender's message ``seq`` in this room, sent
        at ``ts``) at the state's current epoch; advance the chain and forget the used
        chain key. ``log``: the sender's newest log head (``state.log_gossip``).

        Precondition: the key was shared with every device of ``state`` and
        ``needs_rotation`` is false (the SDK checks both)."""
        if state.room != self.room or state.epoch < self.epoch:
            raise ValueError("the session does not belong to this room state")
        header: JsonObject = {
            "v": VERSION,
            "type": "envelope",
            "room": self.room,
            "epoch": state.epoch,
            "state": b64u(state.head),
            "sender": {"national_id": self.sender[0], "device": self.sender[1]},
            "key_id": b64u(self.key_id),
            "index": self.index,
            "log": log,
        }
        keys = message_key(self.chain_key)
        plaintext = pad_content(content, seq=seq, ts=ts)
        ciphertext = AESGCM(keys.key).encrypt(keys.nonce, plaintext, aad(header))
        signed = {**header, "ct": b64u(ciphertext)}
        signature = key_pair.sign(labels.ENVELOPE, signed)
        self.chain_key = next_chain_key(self.chain_key)
        self.index += 1
        return canonical_json({**signed, "sig": b64u(signature)})


@dataclass
class InboundSession:
    """Another device's sender key as received in a verified key share."""

    room: str
    sender: DeviceRef
    key_id: bytes
    chain_key: bytes  # the chain key of message ``next_index``
    next_index: int
    epoch: int  # the room epoch the share was made at
    skipped: dict[int, MessageKey] = field(default_factory=dict)

    def _message_key(self, index: int) -> tuple[MessageKey, bytes, int, dict[int, MessageKey]]:
        """The key for ``index`` and the ratchet state to keep if decryption succeeds."""
        if index < self.next_index:
            stored = self.skipped.get(index)
            if stored is None:
                raise CryptoError(CryptoErrorCode.REPLAY, f"index {index} already used")
            remaining = {i: k for i, k in self.skipped.items() if i != index}
            return stored, self.chain_key, self.next_index, remaining
        if index - self.next_index > MAX_SKIP:
            raise CryptoError(CryptoErrorCode.TOO_FAR_AHEAD, f"index {index}")
        skipped = dict(self.skipped)
        chain = self.chain_key
        for missing in range(self.next_index, index):
            skipped[missing] = message_key(chain)
            chain = next_chain_key(chain)
        while len(skipped) > MAX_SKIPPED_KEYS:
            del skipped[min(skipped)]
        return message_key(chain), next_chain_key(chain), index + 1, skipped


@dataclass(frozen=True, slots=True)
class ParsedEnvelope:
    header: JsonObject
    ciphertext: bytes
    signature: bytes

    @property
    def sender(self) -> DeviceRef:
        sender = self.header["sender"]
        return (sender["national_id"], sender["device"])

    @property
    def key_id(self) -> bytes:
        return unb64u(self.header["key_id"], length=KEY_ID_BYTES)

    @property
    def epoch(self) -> int:
        epoch: int = self.header["epoch"]
        return epoch

    @property
    def room(self) -> str:
        room: str = self.header["room"]
        return room

    @property
    def index(self) -> int:
        index: int = self.header["index"]
        return index

    @property
    def log(self) -> JsonObject | None:
        log: JsonObject | None = self.header["log"]
        return log


def parse_envelope(data: bytes) -> ParsedEnvelope:
    """Encoding checks only (no key needed): a malformed envelope is refused early."""
    body = expect_object(parse_canonical(data, max_bytes=MAX_ENVELOPE_BYTES), _ENVELOPE_KEYS)
    if body["v"] != VERSION or body["type"] != "envelope":
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a version 2 envelope")
    unb64u(body["room"], length=ROOM_ID_BYTES, field="room")
    expect_int(body["epoch"], field="epoch")
    unb64u(body["state"], length=HASH_BYTES, field="state")
    sender = expect_object(body["sender"], {"national_id", "device"}, field="sender")
    expect_str(sender["national_id"], field="sender.national_id", max_length=32)
    expect_int(sender["device"], field="sender.device", minimum=1)
    unb64u(body["key_id"], length=KEY_ID_BYTES, field="key_id")
    expect_int(body["index"], field="index")
    if body["log"] is not None:
        log = expect_object(body["log"], {"size", "root"}, field="log")
        expect_int(log["size"], field="log.size")
        unb64u(log["root"], length=HASH_BYTES, field="log.root")
    header = {key: body[key] for key in _HEADER_KEYS}
    return ParsedEnvelope(
        header=header,
        ciphertext=unb64u(body["ct"], field="ct"),
        signature=unb64u(body["sig"], length=SIGNATURE_BYTES, field="sig"),
    )


@dataclass(frozen=True, slots=True)
class Decrypted:
    sender: DeviceRef
    epoch: int
    index: int
    content: JsonObject
    seq: int  # the sender's own sequence number in the room
    ts: int  # the sender's clock, ms since the Unix epoch


def decrypt_envelope(
    *,
    state: RoomState,
    envelope: ParsedEnvelope,
    sessions: dict[tuple[str, int, bytes], InboundSession],
) -> Decrypted:
    """Verify and decrypt; on success the matching session's ratchet moves forward.

    ``sessions`` maps (national id, device, key id) to inbound sessions of this room.
    Raises CryptoError (see the module docstring for the order of checks)."""
    header = envelope.header
    if envelope.room != state.room:
        raise CryptoError(CryptoErrorCode.BAD_CHAIN, "envelope of another room")
    if envelope.epoch > state.epoch:
        raise CryptoError(CryptoErrorCode.FUTURE_EPOCH, f"epoch {envelope.epoch}")
    if state.head_at(envelope.epoch) != unb64u(header["state"], length=HASH_BYTES):
        raise CryptoError(CryptoErrorCode.BAD_CHAIN, "envelope names another room state")
    if envelope.sender in state.archivers:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the archiver does not send")
    sender_key = state.device_at(*envelope.sender, envelope.epoch)
    if sender_key is None:
        raise CryptoError(CryptoErrorCode.UNKNOWN_DEVICE, "sender not in the room at that epoch")
    verify(
        sender_key,
        envelope.signature,
        labels.ENVELOPE,
        {**header, "ct": b64u(envelope.ciphertext)},
    )
    session = sessions.get((*envelope.sender, envelope.key_id))
    if session is None:
        raise CryptoError(CryptoErrorCode.UNKNOWN_KEY, "no sender key with this id")
    if session.epoch > envelope.epoch or state.removed_between(session.epoch, envelope.epoch):
        raise CryptoError(CryptoErrorCode.STALE_KEY, "sender key not rotated after a removal")
    keys, chain, next_index, skipped = session._message_key(envelope.index)
    try:
        plaintext = AESGCM(keys.key).decrypt(keys.nonce, envelope.ciphertext, aad(header))
    except InvalidTag:
        raise CryptoError(CryptoErrorCode.DECRYPT_FAILED, "AEAD refused the envelope") from None
    content, seq, ts = unpad_content(plaintext)
    session.chain_key, session.next_index, session.skipped = chain, next_index, skipped
    return Decrypted(
        sender=envelope.sender,
        epoch=envelope.epoch,
        index=envelope.index,
        content=content,
        seq=seq,
        ts=ts,
    )
