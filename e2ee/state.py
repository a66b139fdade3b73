"""Signed, hash-chained room state (docs/protocol.md, "Room state").

A room's membership, roles, devices, policy and archiver are the result of a chain of
events. Each event is signed by a device of an authorised member (an admin, or for
leaving and for one's own devices the member themselves), names its epoch (0 for
creation, then +1 each time) and carries the hash of the previous event. The server
stores and orders the chain and checks it too (defence in depth), but a client believes
only what it has verified itself with ``apply_event``: a member or a device the server
inserted has no valid signature from an admin device and is refused.

The same function runs on the server (``chat.services.state``) and in the SDK, so the
two can never disagree about what a chain means.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

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
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import SIGNATURE_BYTES, DeviceKeyPair, PublicDeviceKeys, verify
from e2ee.merkle import HASH_BYTES

ROLES = ("admin", "member")
KINDS = ("direct", "care_team", "teleexpertise")
ACTIONS = (
    "create",
    "add_member",
    "remove_member",
    "set_role",
    "add_device",
    "remove_device",
    "set_policy",
    "set_archiver",
)
ROOM_ID_BYTES = 16
MAX_MEMBERS = 500
MAX_DEVICES_PER_MEMBER = 20
MAX_EVENT_BYTES = 128 * 1024

DeviceRef = tuple[str, int]  # (national id, device number)


@dataclass(frozen=True, slots=True)
class Policy:
    """``archiver_required``: the room must include the organisation's archiver device
    (shown to every member). Sender keys rotate after ``rotate_after_messages``
    messages or ``rotate_after_seconds``, whichever comes first."""

    archiver_required: bool
    rotate_after_messages: int
    rotate_after_seconds: int

    def to_json(self) -> JsonObject:
        return {
            "archiver_required": self.archiver_required,
            "rotate_after_messages": self.rotate_after_messages,
            "rotate_after_seconds": self.rotate_after_seconds,
        }

    @classmethod
    def from_json(cls, value: object) -> Policy:
        body = expect_object(
            value,
            {"archiver_required", "rotate_after_messages", "rotate_after_seconds"},
            field="policy",
        )
        if not isinstance(body["archiver_required"], bool):
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "archiver_required must be a bool")
        return cls(
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
class RoomDevice:
    national_id: str
    device: int
    keys: PublicDeviceKeys

    @property
    def ref(self) -> DeviceRef:
        return (self.national_id, self.device)

    def to_json(self) -> JsonObject:
        return {"national_id": self.national_id, "device": self.device, **self.keys.to_json()}


@dataclass
class Member:
    national_id: str
    role: str
    devices: dict[int, PublicDeviceKeys]


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
    heads: list[bytes] = field(default_factory=list)  # heads[e]: hash of event e
    removals: list[int] = field(default_factory=list)  # epochs that removed a device
    # For every device ever in the room: its keys and [first epoch, end epoch) spans.
    history: dict[DeviceRef, tuple[PublicDeviceKeys, list[list[int]]]] = field(default_factory=dict)

    def devices(self) -> list[RoomDevice]:
        """Every device that must receive this room's sender keys now (archiver included)."""
        found = [
            RoomDevice(national_id=member.national_id, device=number, keys=keys)
            for member in sorted(self.members.values(), key=lambda m: m.national_id)
            for number, keys in sorted(member.devices.items())
        ]
        if self.archiver is not None:
            found.append(self.archiver)
        return found

    def current_device(self, national_id: str, device: int) -> PublicDeviceKeys | None:
        if self.archiver is not None and self.archiver.ref == (national_id, device):
            return self.archiver.keys
        member = self.members.get(national_id)
        return member.devices.get(device) if member else None

    def device_at(self, national_id: str, device: int, epoch: int) -> PublicDeviceKeys | None:
        """The device's keys if it was a room device at ``epoch``."""
        entry = self.history.get((national_id, device))
        if entry is None:
            return None
        keys, spans = entry
        for start, end in spans:
            if start <= epoch < end:
                return keys
        return None

    def removed_between(self, after_epoch: int, up_to_epoch: int) -> bool:
        """Whether a device left in ``(after_epoch, up_to_epoch]``: a sender key made at
        ``after_epoch`` must not be used at ``up_to_epoch``."""
        return any(after_epoch < epoch <= up_to_epoch for epoch in self.removals)

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


_OPEN = 2**62  # end of the span of a device still in the room


def new_room_id() -> str:
    import secrets

    return b64u(secrets.token_bytes(ROOM_ID_BYTES))


def event_hash(raw: bytes) -> bytes:
    """SHA-256 of ``"relais/v1/room-state-hash" || 0x00 || signed event``."""
    return hashlib.sha256(labels.ROOM_STATE_HASH.encode() + b"\x00" + raw).digest()


def sign_event(
    *,
    state: RoomState | None,
    room: str,
    author: DeviceRef,
    key_pair: DeviceKeyPair,
    action: str,
    content: JsonObject,
    timestamp: int,
) -> bytes:
    """The canonical bytes of a new signed event following ``state`` (None to create)."""
    body = {
        "v": 1,
        "type": "room_state",
        "room": room,
        "epoch": 0 if state is None else state.epoch + 1,
        "prev": "" if state is None else b64u(state.head),
        "author": {"national_id": author[0], "device": author[1]},
        "action": action,
        "content": content,
        "ts": timestamp,
    }
    return canonical_json({"event": body, "sig": b64u(key_pair.sign(labels.ROOM_STATE, body))})


def parse_event(raw: bytes) -> tuple[JsonObject, bytes]:
    """Encoding checks only: the event body and its signature."""
    if len(raw) > MAX_EVENT_BYTES:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "state event too large")
    outer = expect_object(parse_canonical(raw, max_bytes=MAX_EVENT_BYTES), {"event", "sig"})
    body = expect_object(
        outer["event"],
        {"v", "type", "room", "epoch", "prev", "author", "action", "content", "ts"},
        field="event",
    )
    if body["v"] != 1 or body["type"] != "room_state":
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a version 1 room-state event")
    unb64u(body["room"], length=ROOM_ID_BYTES, field="room")
    expect_int(body["epoch"], field="epoch")
    expect_int(body["ts"], field="ts")
    author = expect_object(body["author"], {"national_id", "device"}, field="author")
    expect_str(author["national_id"], field="author.national_id", max_length=32)
    expect_int(author["device"], field="author.device", minimum=1)
    if body["action"] not in ACTIONS:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown action")
    if not isinstance(body["content"], dict):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "content must be an object")
    return body, unb64u(outer["sig"], length=SIGNATURE_BYTES, field="sig")


def apply_event(state: RoomState | None, raw: bytes) -> tuple[RoomState, StateEvent]:
    """Verify ``raw`` as the next event after ``state`` (None: the creation) and return
    the new state. ``state`` is not modified. Raises CryptoError on any violation."""
    body, signature = parse_event(raw)
    author: DeviceRef = (body["author"]["national_id"], body["author"]["device"])
    action: str = body["action"]
    content: JsonObject = body["content"]
    if state is None:
        if action != "create" or body["epoch"] != 0 or body["prev"] != "":
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, "a chain starts with a create event")
        new_state = _create(body["room"], content, author)
        author_keys = new_state.current_device(*author)
        if author_keys is None or not new_state.is_admin_device(*author):
            raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the creator must be an admin")
    else:
        if body["room"] != state.room:
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, "event of another room")
        if body["epoch"] != state.epoch + 1 or body["prev"] != b64u(state.head):
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, "event does not follow the head")
        if action == "create":
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, "a room is created once")
        author_keys = state.current_device(*author)
        if author_keys is None or author[0] not in state.members:
            raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "author is not a member device")
        new_state = copy.deepcopy(state)
        new_state.epoch = body["epoch"]
        _APPLY[action](new_state, content, author)
    verify(author_keys.sign_key, signature, labels.ROOM_STATE, body)
    digest = event_hash(raw)
    new_state.head = digest
    new_state.heads.append(digest)
    event = StateEvent(
        room=body["room"],
        epoch=body["epoch"],
        action=action,
        author=author,
        content=content,
        timestamp=body["ts"],
        hash=digest,
        raw=raw,
    )
    return new_state, event


def replay_chain(events: list[bytes]) -> RoomState:
    """Verify a whole chain from its creation event."""
    state: RoomState | None = None
    for raw in events:
        state, _ = apply_event(state, raw)
    if state is None:
        raise CryptoError(CryptoErrorCode.BAD_CHAIN, "empty chain")
    return state


# Content of each action -----------------------------------------------------------


def _role(value: object) -> str:
    if value not in ROLES:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown role")
    return str(value)


def _national_id(value: object) -> str:
    return expect_str(value, field="national_id", max_length=32)


def _device_keys(value: object, *, field: str = "device") -> tuple[int, PublicDeviceKeys]:
    body = expect_object(value, {"device", "sign_key", "kex_key"}, field=field)
    return expect_int(body["device"], field="device", minimum=1), PublicDeviceKeys.from_json(body)


def _member(value: object) -> Member:
    body = expect_object(value, {"national_id", "role", "devices"}, field="member")
    if not isinstance(body["devices"], list) or len(body["devices"]) > MAX_DEVICES_PER_MEMBER:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "devices must be a short list")
    devices: dict[int, PublicDeviceKeys] = {}
    for item in body["devices"]:
        number, keys = _device_keys(item)
        if number in devices:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "a device is listed twice")
        devices[number] = keys
    return Member(
        national_id=_national_id(body["national_id"]), role=_role(body["role"]), devices=devices
    )


def _archiver(value: object) -> RoomDevice | None:
    if value is None:
        return None
    body = expect_object(value, {"national_id", "device", "sign_key", "kex_key"}, field="archiver")
    return RoomDevice(
        national_id=_national_id(body["national_id"]),
        device=expect_int(body["device"], field="device", minimum=1),
        keys=PublicDeviceKeys.from_json(body),
    )


def _start_span(state: RoomState, ref: DeviceRef, keys: PublicDeviceKeys) -> None:
    known = state.history.get(ref)
    if known is not None and known[0] != keys:
        raise CryptoError(CryptoErrorCode.BAD_CHAIN, "a device number cannot change its keys")
    spans = known[1] if known else []
    spans.append([state.epoch, _OPEN])
    state.history[ref] = (keys, spans)


def _end_span(state: RoomState, ref: DeviceRef) -> None:
    entry = state.history.get(ref)
    if entry is not None and entry[1] and entry[1][-1][1] == _OPEN:
        entry[1][-1][1] = state.epoch
    if not state.removals or state.removals[-1] != state.epoch:
        state.removals.append(state.epoch)


def _create(room: str, content: JsonObject, author: DeviceRef) -> RoomState:
    body = expect_object(content, {"kind", "members", "policy", "archiver"}, field="create")
    if body["kind"] not in KINDS:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "unknown room kind")
    if not isinstance(body["members"], list) or not 1 <= len(body["members"]) <= MAX_MEMBERS:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, f"1 to {MAX_MEMBERS} members")
    members: dict[str, Member] = {}
    for item in body["members"]:
        member = _member(item)
        if member.national_id in members:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "a member is listed twice")
        members[member.national_id] = member
    if body["kind"] == "direct" and len(members) != 2:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "a direct room has exactly two people")
    state = RoomState(
        room=room,
        kind=body["kind"],
        epoch=0,
        head=b"",
        members=members,
        policy=Policy.from_json(body["policy"]),
        archiver=_archiver(body["archiver"]),
    )
    for member in members.values():
        for number, keys in member.devices.items():
            _start_span(state, (member.national_id, number), keys)
    if state.archiver is not None:
        _start_span(state, state.archiver.ref, state.archiver.keys)
    return state


def _require_admin(state: RoomState, author: DeviceRef) -> None:
    if not state.is_admin_device(*author):
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "only an admin device may do this")


def _target(state: RoomState, national_id: str) -> Member:
    member = state.members.get(national_id)
    if member is None:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "not a member")
    return member


def _check_admins_remain(state: RoomState) -> None:
    if state.members and not any(m.role == "admin" for m in state.members.values()):
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the room would have no admin")


def _add_member(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    _require_admin(state, author)
    member = _member(content)
    if state.kind == "direct":
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "a direct room keeps its two people")
    if member.national_id in state.members:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "already a member")
    if len(state.members) >= MAX_MEMBERS:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the room is full")
    state.members[member.national_id] = member
    for number, keys in member.devices.items():
        _start_span(state, (member.national_id, number), keys)


def _remove_member(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    body = expect_object(content, {"national_id"}, field="remove_member")
    national_id = _national_id(body["national_id"])
    if author[0] != national_id:
        _require_admin(state, author)
    member = _target(state, national_id)
    del state.members[national_id]
    _check_admins_remain(state)
    for number in member.devices:
        _end_span(state, (national_id, number))
    if not member.devices:
        state.removals.append(state.epoch)


def _set_role(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    _require_admin(state, author)
    body = expect_object(content, {"national_id", "role"}, field="set_role")
    _target(state, _national_id(body["national_id"])).role = _role(body["role"])
    _check_admins_remain(state)


def _add_device(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    body = expect_object(content, {"national_id", "device"}, field="add_device")
    national_id = _national_id(body["national_id"])
    if author[0] != national_id:
        _require_admin(state, author)
    member = _target(state, national_id)
    number, keys = _device_keys(body["device"])
    if number in member.devices:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "device already in the room")
    if len(member.devices) >= MAX_DEVICES_PER_MEMBER:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "too many devices")
    member.devices[number] = keys
    _start_span(state, (national_id, number), keys)


def _remove_device(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    body = expect_object(content, {"national_id", "device"}, field="remove_device")
    national_id = _national_id(body["national_id"])
    if author[0] != national_id:
        _require_admin(state, author)
    member = _target(state, national_id)
    number = expect_int(body["device"], field="device", minimum=1)
    if number not in member.devices:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "device not in the room")
    del member.devices[number]
    _end_span(state, (national_id, number))


def _set_policy(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    _require_admin(state, author)
    state.policy = Policy.from_json(expect_object(content, {"policy"})["policy"])


def _set_archiver(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    _require_admin(state, author)
    archiver = _archiver(expect_object(content, {"archiver"})["archiver"])
    if state.archiver is not None and (archiver is None or archiver.ref != state.archiver.ref):
        _end_span(state, state.archiver.ref)
    if archiver is not None and (state.archiver is None or archiver.ref != state.archiver.ref):
        _start_span(state, archiver.ref, archiver.keys)
    state.archiver = archiver


_APPLY: dict[str, Any] = {
    "add_member": _add_member,
    "remove_member": _remove_member,
    "set_role": _set_role,
    "add_device": _add_device,
    "remove_device": _remove_device,
    "set_policy": _set_policy,
    "set_archiver": _set_archiver,
}


# Helpers to write content -----------------------------------------------------------


def member_content(national_id: str, role: str, devices: list[RoomDevice]) -> JsonObject:
    return {
        "national_id": national_id,
        "role": role,
        "devices": [{"device": d.device, **d.keys.to_json()} for d in devices],
    }


def create_content(
    *, kind: str, members: list[JsonObject], policy: Policy, archiver: RoomDevice | None = None
) -> JsonObject:
    return {
        "kind": kind,
        "members": members,
        "policy": policy.to_json(),
        "archiver": archiver.to_json() if archiver else None,
    }


def certified_devices_of(state: RoomState) -> list[RoomDevice]:
    """Every device the state names, for checking against the transparency log."""
    return state.devices()


__all__ = ["HASH_BYTES", "RoomState", "StateEvent", "apply_event", "sign_event"]
