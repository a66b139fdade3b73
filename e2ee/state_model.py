"""The data a room state is made of: roles, kinds, policy, devices, members, the
encrypted profile, and the verified ``RoomState`` itself. The rules that change it are
in ``e2ee.state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from e2ee.encoding import JsonObject, b64u, expect_int, expect_object
from e2ee.errors import CryptoError, CryptoErrorCode

ROLES = ("admin", "member")
KINDS = ("direct", "care_team", "teleexpertise")
ACTIONS = (
    "create",
    "add_member",
    "remove_member",
    "set_role",
    "add_device",
    "remove_device",
    "set_identity",
    "set_policy",
    "set_archiver",
    "set_profile",
)
ROOM_ID_BYTES = 16
MAX_MEMBERS = 500
MAX_DEVICES_PER_MEMBER = 20
MAX_EVENT_BYTES = 128 * 1024
MAX_PROFILE_BYTES = 16 * 1024  # ciphertext of a room profile

DeviceRef = tuple[str, int]  # (national id, device number)


@dataclass(frozen=True, slots=True)
class Policy:
    """``archiver_required``: the room must include the organisation's archiver device
    (shown to every member). Sender keys rotate after ``rotate_after_messages``
    messages or ``rotate_after_seconds``, whichever comes first.
    ``archive_to_members``: the archiver also sends each archive to every member's
    personal MSSanté addresses (docs/archive.md); written only when true, so a policy
    without it has the bytes it always had."""

    archiver_required: bool
    rotate_after_messages: int
    rotate_after_seconds: int
    archive_to_members: bool = False

    def to_json(self) -> JsonObject:
        body: JsonObject = {
            "archiver_required": self.archiver_required,
            "rotate_after_messages": self.rotate_after_messages,
            "rotate_after_seconds": self.rotate_after_seconds,
        }
        if self.archive_to_members:
            body["archive_to_members"] = True
        return body

    @classmethod
    def from_json(cls, value: object) -> Policy:
        keys = {"archiver_required", "rotate_after_messages", "rotate_after_seconds"}
        if isinstance(value, dict) and "archive_to_members" in value:
            keys.add("archive_to_members")
        body = expect_object(value, keys, field="policy")
        if not isinstance(body["archiver_required"], bool):
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "archiver_required must be a bool")
        # Only ``true`` is written: ``false`` is the field left out, so a policy has
        # one encoding.
        if "archive_to_members" in body and body["archive_to_members"] is not True:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "archive_to_members must be true")
        return cls(
            archive_to_members="archive_to_members" in body,
            archiver_required=body["archiver_required"],
            rotate_after_messages=expect_int(
                body["rotate_after_messages"],
                field="rotate_after_messages",
                minimum=1,
                maximum=100_000,
            ),
            rotate_after_seconds=expect_int(
                body["rotate_after_seconds"],
                field="rotate_after_seconds",
                minimum=60,
                maximum=30 * 24 * 3600,
            ),
        )


def default_policy(kind: str) -> Policy:
    """Care-team and téléexpertise rooms are archived by default; keys rotate weekly
    or every 1,000 messages."""
    return Policy(
        archiver_required=kind in ("care_team", "teleexpertise"),
        rotate_after_messages=1000,
        rotate_after_seconds=7 * 24 * 3600,
    )


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A device as the state lists it: its signing key, and the signature of its
    owner's identity key over its certificate (``e2ee.identity``)."""

    sign_key: bytes
    cross_sig: bytes


@dataclass(frozen=True, slots=True)
class RoomDevice:
    """A device of the room, with whose identity key vouches for it."""

    national_id: str
    device: int
    sign_key: bytes
    cross_sig: bytes
    identity_key: bytes

    @property
    def ref(self) -> DeviceRef:
        return (self.national_id, self.device)

    def entry_json(self) -> JsonObject:
        """The device as a member's ``devices`` list carries it."""
        return {
            "device": self.device,
            "sign_key": b64u(self.sign_key),
            "cross_sig": b64u(self.cross_sig),
        }

    def archiver_json(self) -> JsonObject:
        """The device as the ``archiver`` field carries it."""
        return {
            "national_id": self.national_id,
            "identity_key": b64u(self.identity_key),
            **self.entry_json(),
        }


@dataclass
class Member:
    national_id: str
    role: str
    identity_key: bytes
    devices: dict[int, DeviceEntry]


@dataclass(frozen=True, slots=True)
class Profile:
    """The room's encrypted profile (title, patient, notes): only ciphertext here. The
    key ``key_id`` travels with sender-key shares (``e2ee.profile``)."""

    version: int
    key_id: bytes
    ciphertext: bytes
    epoch: int  # the epoch of the event that set it


@dataclass
class RoomState:
    """The verified state after the event of ``epoch`` (whose hash is ``head``)."""

    room: str
    kind: str
    epoch: int
    head: bytes
    members: dict[str, Member]
    policy: Policy
    archiver: RoomDevice | None
    profile: Profile | None = None
    heads: list[bytes] = field(default_factory=list)  # heads[e]: hash of event e
    timestamps: list[int] = field(default_factory=list)  # timestamps[e]: "ts" of event e
    removals: list[int] = field(default_factory=list)  # epochs that removed a device
    # For every device ever in the room: its signing key and [first epoch, end epoch) spans.
    history: dict[DeviceRef, tuple[bytes, list[list[int]]]] = field(default_factory=dict)
    # Every device ever named archiver: it receives keys but never sends, and the
    # identity holding it is never a member (docs/protocol.md §10.5).
    archivers: set[DeviceRef] = field(default_factory=set)

    def devices(self) -> list[RoomDevice]:
        """Every device that must receive this room's sender keys now (archiver included)."""
        found = [
            RoomDevice(
                national_id=member.national_id,
                device=number,
                sign_key=entry.sign_key,
                cross_sig=entry.cross_sig,
                identity_key=member.identity_key,
            )
            for member in sorted(self.members.values(), key=lambda m: m.national_id)
            for number, entry in sorted(member.devices.items())
        ]
        if self.archiver is not None:
            found.append(self.archiver)
        return found

    def current_device(self, national_id: str, device: int) -> bytes | None:
        """The signing key of a device in the room now, or None."""
        if self.archiver is not None and self.archiver.ref == (national_id, device):
            return self.archiver.sign_key
        member = self.members.get(national_id)
        entry = member.devices.get(device) if member else None
        return entry.sign_key if entry else None

    def device_at(self, national_id: str, device: int, epoch: int) -> bytes | None:
        """The device's signing key if it was a room device at ``epoch``."""
        entry = self.history.get((national_id, device))
        if entry is None:
            return None
        sign_key, spans = entry
        for start, end in spans:
            if start <= epoch < end:
                return sign_key
        return None

    def is_archiver_identity(self, national_id: str) -> bool:
        """Whether ``national_id`` holds a device this room ever named archiver."""
        return any(ref[0] == national_id for ref in self.archivers)

    def removed_between(self, after_epoch: int, up_to_epoch: int) -> bool:
        """Whether a device left in ``(after_epoch, up_to_epoch]``: a sender key made at
        ``after_epoch`` must not be used at ``up_to_epoch``."""
        return any(after_epoch < epoch <= up_to_epoch for epoch in self.removals)

    def first_removal_after(self, epoch: int) -> int | None:
        """The first epoch after ``epoch`` that removed a device, if any."""
        return next((e for e in self.removals if e > epoch), None)

    def head_at(self, epoch: int) -> bytes | None:
        return self.heads[epoch] if 0 <= epoch < len(self.heads) else None

    def is_admin_device(self, national_id: str, device: int) -> bool:
        member = self.members.get(national_id)
        return member is not None and member.role == "admin" and device in member.devices

    @property
    def archiver_missing(self) -> bool:
        return self.policy.archiver_required and self.archiver is None


@dataclass(frozen=True, slots=True)
class StateEvent:
    """A verified event: what it did, who signed it, and its hash."""

    room: str
    epoch: int
    action: str
    author: DeviceRef
    content: JsonObject
    timestamp: int
    hash: bytes
    raw: bytes
    log: JsonObject | None  # the author's newest log head, gossiped (size, root)
