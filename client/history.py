"""History keys: how a practitioner's other devices, and a device recovered with the
recovery code, read the rooms' past (docs/protocol.md §10.9).

For every sender key a device makes or receives, it keeps the chain key at the first
index it could read — a *history key* — and backs it up sealed to the practitioner's
recovery key (only the recovery code opens it; the server stores opaque bytes). Linking
a new device forwards the history keys to it directly, sealed to the new device's
key-agreement key and signed by the linking device.

The rooms' *profile keys* (``e2ee.profile``) travel the same two ways: in the transfer's
``profile_keys`` list and as records of their own in the backup, so a linked or
recovered device shows a care-team room's title and patient without waiting for a
member to share keys again. A received profile key is used only once the room's
verified state names it (``RoomProfileKey.check``).

This is the usual trade of end-to-end encrypted messengers that keep history across
devices (Matrix's key backup, WhatsApp's history sync): a stolen device store reads the
history that device could read; the chain still moves forward for messages, and keys
made after a rotation are out of reach of an older copy of the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from client.api import RestApi
from e2ee import labels, recovery
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
from e2ee.envelopes import KEY_ID_BYTES, InboundSession
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import SIGNATURE_BYTES, DeviceKeyPair, verify
from e2ee.profile import KEY_BYTES as PROFILE_KEY_BYTES
from e2ee.profile import KEY_ID_BYTES as PROFILE_KEY_ID_BYTES
from e2ee.profile import ProfileKey, decrypt_profile
from e2ee.ratchet import CHAIN_KEY_BYTES
from e2ee.shares import SUITE
from e2ee.state_model import RoomState

DeviceRef = tuple[str, int]
UPLOAD_BATCH = 200
KEYS_PER_TRANSFER = 8  # history keys per to-device message (each message ≤ 4 KiB)
PROFILE_KEYS_PER_TRANSFER = 16  # profile keys per to-device message (≈ 2.8 KiB each)
_ENTRY_KEYS = {"room", "sender", "key_id", "index", "chain_key", "epoch"}
_PROFILE_KEY_FIELDS = {"room", "version", "key_id", "key"}
PROFILE_KEY_RECORD = "profile_key"  # the ``type`` of a profile key in the backup


@dataclass(frozen=True, slots=True)
class HistoryKey:
    room: str  # the room's uid
    sender: DeviceRef
    key_id: bytes
    index: int
    chain_key: bytes
    epoch: int

    @property
    def id(self) -> str:
        """Stable id of the sender key (not of its index): stored once."""
        return hashlib.sha256(
            canonical_json(
                {"room": self.room, "sender": list(self.sender), "key_id": b64u(self.key_id)}
            )
        ).hexdigest()

    def to_json(self) -> JsonObject:
        return {
            "room": self.room,
            "sender": {"national_id": self.sender[0], "device": self.sender[1]},
            "key_id": b64u(self.key_id),
            "index": self.index,
            "chain_key": b64u(self.chain_key),
            "epoch": self.epoch,
        }

    @classmethod
    def from_json(cls, value: object) -> HistoryKey:
        body = expect_object(value, _ENTRY_KEYS, field="history key")
        sender = expect_object(body["sender"], {"national_id", "device"}, field="sender")
        return cls(
            room=expect_str(body["room"], field="room", max_length=22),
            sender=(
                expect_str(sender["national_id"], field="national_id", max_length=32),
                expect_int(sender["device"], field="device", minimum=1),
            ),
            key_id=unb64u(body["key_id"], length=KEY_ID_BYTES, field="key_id"),
            index=expect_int(body["index"], field="index"),
            chain_key=unb64u(body["chain_key"], length=CHAIN_KEY_BYTES, field="chain_key"),
            epoch=expect_int(body["epoch"], field="epoch"),
        )

    def session(self) -> InboundSession:
        return InboundSession(
            room=self.room,
            sender=self.sender,
            key_id=self.key_id,
            chain_key=self.chain_key,
            next_index=self.index,
            epoch=self.epoch,
        )

    @classmethod
    def of(cls, session: InboundSession) -> HistoryKey:
        return cls(
            room=session.room,
            sender=session.sender,
            key_id=session.key_id,
            index=session.next_index,
            chain_key=session.chain_key,
            epoch=session.epoch,
        )


@dataclass(frozen=True, slots=True)
class RoomProfileKey:
    """The key of one version of a room's profile, as it travels between the devices of
    one practitioner (protocol §10.9): PROFILE KEY = ``{"room","version","key_id","key"}``.
    """

    room: str  # the room's uid
    version: int
    key: ProfileKey

    @property
    def id(self) -> str:
        """What its backup record is filed under: one per room and key."""
        return hashlib.sha256(
            canonical_json({"room": self.room, "profile_key_id": b64u(self.key.key_id)})
        ).hexdigest()

    def to_json(self) -> JsonObject:
        return {
            "room": self.room,
            "version": self.version,
            "key_id": b64u(self.key.key_id),
            "key": b64u(self.key.key),
        }

    def backup_json(self) -> JsonObject:
        """The backup record: PROFILE KEY with ``"type": "profile_key"`` (a history key
        has no ``type``)."""
        return {"type": PROFILE_KEY_RECORD, **self.to_json()}

    @classmethod
    def from_json(cls, value: object) -> RoomProfileKey:
        body = expect_object(value, _PROFILE_KEY_FIELDS, field="profile key")
        return cls(
            room=expect_str(body["room"], field="room", max_length=22),
            version=expect_int(body["version"], field="version", minimum=1),
            key=ProfileKey(
                key_id=unb64u(body["key_id"], length=PROFILE_KEY_ID_BYTES, field="key_id"),
                key=unb64u(body["key"], length=PROFILE_KEY_BYTES, field="key"),
            ),
        )

    @classmethod
    def from_backup(cls, value: JsonObject) -> RoomProfileKey:
        body = expect_object(value, {"type", *_PROFILE_KEY_FIELDS}, field="profile key record")
        if body["type"] != PROFILE_KEY_RECORD:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a profile key record")
        return cls.from_json({k: v for k, v in body.items() if k != "type"})

    def check(self, state: RoomState) -> None:
        """Refuse the key unless the room's verified state names it: the same room, and
        its newest ``set_profile`` has this version and key id; and the key must open
        that profile. Raises CryptoError (``unknown_key``, ``decrypt_failed``)."""
        profile = state.profile
        if state.room != self.room:
            raise CryptoError(CryptoErrorCode.UNKNOWN_KEY, "a profile key for another room")
        if profile is None or (profile.version, profile.key_id) != (
            self.version,
            self.key.key_id,
        ):
            raise CryptoError(
                CryptoErrorCode.UNKNOWN_KEY, "a profile key the room's state does not name"
            )
        decrypt_profile(
            room=self.room, version=self.version, key=self.key, ciphertext=profile.ciphertext
        )


class History:
    """The part of the key store under ``data["history"]``:
    ``{"keys": {id: entry}, "uploaded": [id, ...]}``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.data.setdefault("keys", {})
        self.data.setdefault("uploaded", [])

    def record(self, key: HistoryKey) -> bool:
        """Keep a history key unless one for the same sender key is held (the earliest
        index wins: it reads more). True if it was new."""
        held = self.data["keys"].get(key.id)
        if held is not None and held["index"] <= key.index:
            return False
        self.data["keys"][key.id] = key.to_json()
        if key.id in self.data["uploaded"]:
            self.data["uploaded"].remove(key.id)
        return True

    def keys(self, room: str | None = None) -> list[HistoryKey]:
        found = [HistoryKey.from_json(v) for v in self.data["keys"].values()]
        return [k for k in found if room is None or k.room == room]

    def find(self, room: str, sender: DeviceRef, key_id: bytes) -> HistoryKey | None:
        probe = HistoryKey(room=room, sender=sender, key_id=key_id, index=0, chain_key=b"", epoch=0)
        value = self.data["keys"].get(probe.id)
        return HistoryKey.from_json(value) if value is not None else None

    async def upload(
        self,
        api: RestApi,
        recovery_key: bytes | None,
        profile_keys: Iterable[RoomProfileKey] = (),
    ) -> int:
        """Back up the history keys, and the given profile keys, not backed up yet; how
        many records were sent. Both kinds share the list of uploaded ids (their ids
        hash different documents, so they never collide)."""
        if recovery_key is None:
            return 0
        uploaded = set(self.data["uploaded"])
        waiting: list[tuple[str, JsonObject]] = [
            (k.id, k.to_json()) for k in self.keys() if k.id not in uploaded
        ]
        waiting += [(p.id, p.backup_json()) for p in profile_keys if p.id not in uploaded]
        for start in range(0, len(waiting), UPLOAD_BATCH):
            batch = waiting[start : start + UPLOAD_BATCH]
            await api.call(
                "POST",
                "backup/keys",
                json={
                    "keys": [
                        {"id": id_, "sealed": b64u(recovery.seal(recovery_key, value))}
                        for id_, value in batch
                    ]
                },
            )
            self.data["uploaded"].extend(id_ for id_, _ in batch)
        return len(waiting)


def open_backup_record(sealed: bytes, code: recovery.RecoveryCode) -> HistoryKey | RoomProfileKey:
    """One backed-up record: a history key, or a profile key (``"type":"profile_key"``).
    Raises CryptoError for anything else."""
    value = recovery.open_sealed(code, sealed)
    if value.get("type") == PROFILE_KEY_RECORD:
        return RoomProfileKey.from_backup(value)
    return HistoryKey.from_json(value)


async def restore_from_backup(
    api: RestApi,
    code: recovery.RecoveryCode,
    history: History,
    profile_keys: list[RoomProfileKey] | None = None,
) -> int:
    """Fetch and open every backed-up record; how many history keys were restored. The
    profile keys found are appended to ``profile_keys``, for the caller to check against
    the rooms' states once it has them. A damaged entry, or one filed under another
    id, is skipped."""
    after, restored = 0, 0
    while True:
        page = await api.call("GET", "backup/keys", params={"after": after, "limit": 500})
        if not page["keys"]:
            return restored
        for item in page["keys"]:
            after = item["n"]
            try:
                record = open_backup_record(unb64u(item["sealed"]), code)
            except CryptoError:
                continue  # a damaged or foreign entry: skip it, keep the others
            if record.id != item["id"]:
                continue
            if isinstance(record, RoomProfileKey):
                history.data["uploaded"].append(record.id)  # already in the backup
                if profile_keys is not None:
                    profile_keys.append(record)
            elif history.record(record):
                restored += 1


# Forwarding history keys to a newly linked device ------------------------------------


def transfer_body(
    *,
    keys: Iterable[HistoryKey],
    sender: DeviceRef,
    recipient: DeviceRef,
    profile_keys: Iterable[RoomProfileKey] = (),
) -> JsonObject:
    """The signed body of a transfer; ``profile_keys`` is written only when there are
    some, so a transfer of history keys alone is the same bytes as before it existed."""
    body: JsonObject = {
        "v": 2,
        "type": "history_keys",
        "sender": {"national_id": sender[0], "device": sender[1]},
        "recipient": {"national_id": recipient[0], "device": recipient[1]},
        "keys": [k.to_json() for k in keys],
    }
    profiles = [p.to_json() for p in profile_keys]
    if profiles:
        body["profile_keys"] = profiles
    return body


def seal_transfer(
    *,
    keys: Iterable[HistoryKey],
    sender: DeviceRef,
    key_pair: DeviceKeyPair,
    recipient: DeviceRef,
    recipient_kex: bytes,
    profile_keys: Iterable[RoomProfileKey] = (),
) -> bytes:
    """One to-device message carrying history keys (and profile keys) to a device of the
    same practitioner, signed by the sender device and sealed to the recipient's
    key-agreement key."""
    body = transfer_body(keys=keys, sender=sender, recipient=recipient, profile_keys=profile_keys)
    signed = canonical_json({"transfer": body, "sig": b64u(key_pair.sign(labels.HISTORY, body))})
    sealed = SUITE.encrypt(
        signed, X25519PublicKey.from_public_bytes(recipient_kex), info=labels.HPKE_INFO_HISTORY
    )
    return canonical_json({"v": 2, "type": "history_keys", "ct": b64u(sealed)})


def is_transfer(message: bytes) -> bool:
    try:
        return parse_canonical(message, max_bytes=8192).get("type") == "history_keys"
    except CryptoError:
        return False


@dataclass(frozen=True, slots=True)
class OpenedTransfer:
    sender: DeviceRef
    keys: list[HistoryKey]
    profile_keys: list[RoomProfileKey]
    body: JsonObject
    signature: bytes

    def verify(self, sign_key: bytes) -> None:
        verify(sign_key, self.signature, labels.HISTORY, self.body)


def open_transfer(
    message: bytes, *, kex_private: X25519PrivateKey, me: DeviceRef
) -> OpenedTransfer:
    outer = expect_object(parse_canonical(message, max_bytes=8192), {"v", "type", "ct"})
    try:
        plaintext = SUITE.decrypt(
            unb64u(outer["ct"], field="ct"), kex_private, info=labels.HPKE_INFO_HISTORY
        )
    except (InvalidTag, ValueError):
        raise CryptoError(CryptoErrorCode.DECRYPT_FAILED, "history transfer") from None
    signed = expect_object(parse_canonical(plaintext, max_bytes=8192), {"transfer", "sig"})
    fields = {"v", "type", "sender", "recipient", "keys"}
    if isinstance(signed["transfer"], dict) and "profile_keys" in signed["transfer"]:
        fields.add("profile_keys")  # absent in transfers of history keys alone
    body = expect_object(signed["transfer"], fields, field="transfer")
    recipient = expect_object(body["recipient"], {"national_id", "device"}, field="recipient")
    if (recipient["national_id"], recipient["device"]) != me:
        raise CryptoError(CryptoErrorCode.WRONG_RECIPIENT, "history transfer for another device")
    sender = expect_object(body["sender"], {"national_id", "device"}, field="sender")
    if not isinstance(body["keys"], list):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "keys")
    profile_keys = body.get("profile_keys", [])
    if not isinstance(profile_keys, list) or ("profile_keys" in body and not profile_keys):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "profile_keys")
    return OpenedTransfer(
        sender=(sender["national_id"], sender["device"]),
        keys=[HistoryKey.from_json(k) for k in body["keys"]],
        profile_keys=[RoomProfileKey.from_json(p) for p in profile_keys],
        body=body,
        signature=unb64u(signed["sig"], length=SIGNATURE_BYTES, field="sig"),
    )
