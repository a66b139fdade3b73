"""Signed, hash-chained room state (docs/protocol.md, "Room state").

A room's membership, roles, devices, policy and archiver are the result of a chain of
events. Each event is signed by a device of an authorised member (an admin, or for
leaving and for one's own devices the member themselves), names its epoch (0 for
creation, then +1 each time) and carries the hash of the previous event. The server
stores and orders the chain and checks it too (defence in depth), but a client believes
only what it has verified itself with ``apply_event``: a member or a device the server
inserted has no valid signature from an admin device and is refused.

Version 2 lists each member's identity key and, for every device, the identity key's
signature over the device's certificate (``e2ee.identity``), so the chain itself proves
that each device belongs to its member: an admin's device cannot be tricked into signing
in a device the member's identity key never vouched for. A device vouched for by the
member's identity key may add itself (how a linked or recovered device joins its rooms).

The same function runs on the server (``chat.services.rooms``) and in the SDK, so the
two can never disagree about what a chain means.
"""

from __future__ import annotations

import copy
import hashlib
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
from e2ee.identity import DeviceKind, verify_certificate
from e2ee.keys import KEY_BYTES, SIGNATURE_BYTES, DeviceKeyPair, verify
from e2ee.merkle import HASH_BYTES
from e2ee.profile import KEY_ID_BYTES as PROFILE_KEY_ID_BYTES
from e2ee.state_model import (
    ACTIONS,
    KINDS,
    MAX_DEVICES_PER_MEMBER,
    MAX_EVENT_BYTES,
    MAX_MEMBERS,
    MAX_PROFILE_BYTES,
    ROLES,
    ROOM_ID_BYTES,
    DeviceEntry,
    DeviceRef,
    Member,
    Policy,
    Profile,
    RoomDevice,
    RoomState,
    StateEvent,
    default_policy,
)

_OPEN = 2**62  # end of the span of a device still in the room
VERSION = 2


def new_room_id() -> str:
    import secrets

    return b64u(secrets.token_bytes(ROOM_ID_BYTES))


def event_hash(raw: bytes) -> bytes:
    """SHA-256 of ``"relais/v2/room-state-hash" || 0x00 || signed event``."""
    return hashlib.sha256(labels.ROOM_STATE_HASH.encode() + b"\x00" + raw).digest()


def log_gossip(size: int, root: bytes) -> JsonObject:
    """The ``log`` field of events and envelopes: the newest log head the author
    accepted, so that members can compare views of the key-transparency log."""
    return {"size": size, "root": b64u(root)}


def sign_event(
    *,
    state: RoomState | None,
    room: str,
    author: DeviceRef,
    key_pair: DeviceKeyPair,
    action: str,
    content: JsonObject,
    timestamp: int,
    log: JsonObject | None = None,
) -> bytes:
    """The canonical bytes of a new signed event following ``state`` (None to create)."""
    body = {
        "v": VERSION,
        "type": "room_state",
        "room": room,
        "epoch": 0 if state is None else state.epoch + 1,
        "prev": "" if state is None else b64u(state.head),
        "author": {"national_id": author[0], "device": author[1]},
        "action": action,
        "content": content,
        "ts": timestamp,
        "log": log,
    }
    return canonical_json({"event": body, "sig": b64u(key_pair.sign(labels.ROOM_STATE, body))})


def _parse_log(value: object) -> JsonObject | None:
    if value is None:
        return None
    body = expect_object(value, {"size", "root"}, field="log")
    expect_int(body["size"], field="log.size")
    unb64u(body["root"], length=HASH_BYTES, field="log.root")
    return body


def parse_event(raw: bytes) -> tuple[JsonObject, bytes]:
    """Encoding checks only: the event body and its signature."""
    if len(raw) > MAX_EVENT_BYTES:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "state event too large")
    outer = expect_object(parse_canonical(raw, max_bytes=MAX_EVENT_BYTES), {"event", "sig"})
    body = expect_object(
        outer["event"],
        {"v", "type", "room", "epoch", "prev", "author", "action", "content", "ts", "log"},
        field="event",
    )
    if body["v"] != VERSION or body["type"] != "room_state":
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "not a version 2 room-state event")
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
    _parse_log(body["log"])
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
        author_key = new_state.current_device(*author)
        if author_key is None or not new_state.is_admin_device(*author):
            raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the creator must be an admin")
    else:
        if body["room"] != state.room:
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, "event of another room")
        if body["epoch"] != state.epoch + 1 or body["prev"] != b64u(state.head):
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, "event does not follow the head")
        if action == "create":
            raise CryptoError(CryptoErrorCode.BAD_CHAIN, "a room is created once")
        new_state = copy.deepcopy(state)
        new_state.epoch = body["epoch"]
        author_key = _author_key(state, action, content, author)
        _APPLY[action](new_state, content, author)
    verify(author_key, signature, labels.ROOM_STATE, body)
    digest = event_hash(raw)
    new_state.head = digest
    new_state.heads.append(digest)
    new_state.timestamps.append(body["ts"])
    event = StateEvent(
        room=body["room"],
        epoch=body["epoch"],
        action=action,
        author=author,
        content=content,
        timestamp=body["ts"],
        hash=digest,
        raw=raw,
        log=body["log"],
    )
    return new_state, event


def _author_key(state: RoomState, action: str, content: JsonObject, author: DeviceRef) -> bytes:
    """The signing key the event must verify with: the author's device in the state, or,
    for a device adding itself, the key its certificate names (checked by the action)."""
    key = state.current_device(*author)
    if key is not None and author[0] in state.members:
        return key
    if action == "add_device":
        body = expect_object(content, {"national_id", "device"}, field="add_device")
        number, entry = _device_entry(body["device"])
        if (body["national_id"], number) == author:
            return entry.sign_key
    raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "author is not a member device")


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


def _key(value: object, field: str) -> bytes:
    return unb64u(value, length=KEY_BYTES, field=field)


def _device_entry(value: object, *, field: str = "device") -> tuple[int, DeviceEntry]:
    body = expect_object(value, {"device", "sign_key", "cross_sig"}, field=field)
    return expect_int(body["device"], field="device", minimum=1), DeviceEntry(
        sign_key=_key(body["sign_key"], "sign_key"),
        cross_sig=unb64u(body["cross_sig"], length=SIGNATURE_BYTES, field="cross_sig"),
    )


def _check_vouched(
    national_id: str, identity_key: bytes, number: int, entry: DeviceEntry, kind: DeviceKind
) -> None:
    """The member's identity key signed this device's certificate, for this kind."""
    try:
        verify_certificate(
            national_id=national_id,
            device=number,
            kind=kind,
            sign_key=entry.sign_key,
            identity_key=identity_key,
            signature=entry.cross_sig,
        )
    except CryptoError:
        raise CryptoError(
            CryptoErrorCode.BAD_SIGNATURE,
            f"device {number} of {national_id} is not vouched for by their identity key",
        ) from None


def _devices(national_id: str, identity_key: bytes, value: object) -> dict[int, DeviceEntry]:
    if not isinstance(value, list) or len(value) > MAX_DEVICES_PER_MEMBER:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "devices must be a short list")
    devices: dict[int, DeviceEntry] = {}
    for item in value:
        number, entry = _device_entry(item)
        if number in devices:
            raise CryptoError(CryptoErrorCode.BAD_ENCODING, "a device is listed twice")
        _check_vouched(national_id, identity_key, number, entry, "device")
        devices[number] = entry
    return devices


def _member(value: object) -> Member:
    body = expect_object(value, {"national_id", "role", "identity_key", "devices"}, field="member")
    national_id = _national_id(body["national_id"])
    identity_key = _key(body["identity_key"], "identity_key")
    return Member(
        national_id=national_id,
        role=_role(body["role"]),
        identity_key=identity_key,
        devices=_devices(national_id, identity_key, body["devices"]),
    )


def _archiver(value: object) -> RoomDevice | None:
    if value is None:
        return None
    body = expect_object(
        value,
        {"national_id", "identity_key", "device", "sign_key", "cross_sig"},
        field="archiver",
    )
    national_id = _national_id(body["national_id"])
    identity_key = _key(body["identity_key"], "identity_key")
    number, entry = _device_entry(
        {k: body[k] for k in ("device", "sign_key", "cross_sig")}, field="archiver"
    )
    _check_vouched(national_id, identity_key, number, entry, "archiver")
    return RoomDevice(
        national_id=national_id,
        device=number,
        sign_key=entry.sign_key,
        cross_sig=entry.cross_sig,
        identity_key=identity_key,
    )


def _start_span(state: RoomState, ref: DeviceRef, sign_key: bytes) -> None:
    known = state.history.get(ref)
    if known is not None and known[0] != sign_key:
        raise CryptoError(CryptoErrorCode.BAD_CHAIN, "a device number cannot change its keys")
    spans = known[1] if known else []
    spans.append([state.epoch, _OPEN])
    state.history[ref] = (sign_key, spans)


def _end_span(state: RoomState, ref: DeviceRef) -> None:
    entry = state.history.get(ref)
    if entry is not None and entry[1] and entry[1][-1][1] == _OPEN:
        entry[1][-1][1] = state.epoch
    _mark_removal(state)


def _mark_removal(state: RoomState) -> None:
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
        for number, entry in member.devices.items():
            _start_span(state, (member.national_id, number), entry.sign_key)
    if state.archiver is not None:
        _name_archiver(state, state.archiver)
    return state


def _name_archiver(state: RoomState, archiver: RoomDevice) -> None:
    """The archiver belongs to an organisation, never to a member."""
    if archiver.national_id in state.members:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the archiver cannot be a member")
    _start_span(state, archiver.ref, archiver.sign_key)
    state.archivers.add(archiver.ref)


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
    if state.is_archiver_identity(member.national_id):
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the archiver cannot be a member")
    if len(state.members) >= MAX_MEMBERS:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the room is full")
    state.members[member.national_id] = member
    for number, entry in member.devices.items():
        _start_span(state, (member.national_id, number), entry.sign_key)


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
    _mark_removal(state)


def _set_role(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    _require_admin(state, author)
    body = expect_object(content, {"national_id", "role"}, field="set_role")
    _target(state, _national_id(body["national_id"])).role = _role(body["role"])
    _check_admins_remain(state)


def _add_device(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    """An admin device, a device of that member, or the device itself (vouched for by
    the member's identity key) adds one of the member's devices."""
    body = expect_object(content, {"national_id", "device"}, field="add_device")
    national_id = _national_id(body["national_id"])
    if author[0] != national_id:
        _require_admin(state, author)
    member = _target(state, national_id)
    number, entry = _device_entry(body["device"])
    if number in member.devices:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "device already in the room")
    if len(member.devices) >= MAX_DEVICES_PER_MEMBER:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "too many devices")
    _check_vouched(national_id, member.identity_key, number, entry, "device")
    member.devices[number] = entry
    _start_span(state, (national_id, number), entry.sign_key)


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


def _set_identity(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    """A member's identity key changed (they lost every device and started again): an
    admin of another member, who was shown the change, signs the new key in. Every device
    under the old key leaves the room."""
    body = expect_object(content, {"national_id", "identity_key", "devices"}, field="set_identity")
    national_id = _national_id(body["national_id"])
    if author[0] == national_id:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "another admin signs a new identity key")
    _require_admin(state, author)
    member = _target(state, national_id)
    identity_key = _key(body["identity_key"], "identity_key")
    if identity_key == member.identity_key:
        raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "the identity key did not change")
    devices = _devices(national_id, identity_key, body["devices"])
    for number in member.devices:
        _end_span(state, (national_id, number))
    _mark_removal(state)
    member.identity_key = identity_key
    member.devices = devices
    for number, entry in devices.items():
        _start_span(state, (national_id, number), entry.sign_key)


def _set_policy(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    _require_admin(state, author)
    state.policy = Policy.from_json(expect_object(content, {"policy"})["policy"])


def _set_archiver(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    _require_admin(state, author)
    archiver = _archiver(expect_object(content, {"archiver"})["archiver"])
    if state.archiver is not None and (archiver is None or archiver.ref != state.archiver.ref):
        _end_span(state, state.archiver.ref)
    if archiver is not None and (state.archiver is None or archiver.ref != state.archiver.ref):
        _name_archiver(state, archiver)
    state.archiver = archiver


def _set_profile(state: RoomState, content: JsonObject, author: DeviceRef) -> None:
    """A new version of the encrypted room profile (``e2ee.profile``), by an admin."""
    _require_admin(state, author)
    body = expect_object(content, {"version", "key_id", "ct"}, field="set_profile")
    version = expect_int(body["version"], field="version", minimum=1)
    expected = 1 if state.profile is None else state.profile.version + 1
    if version != expected:
        raise CryptoError(CryptoErrorCode.BAD_CHAIN, f"profile version {expected} expected")
    ciphertext = unb64u(body["ct"], field="ct")
    if len(ciphertext) > MAX_PROFILE_BYTES:
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "profile too large")
    state.profile = Profile(
        version=version,
        key_id=unb64u(body["key_id"], length=PROFILE_KEY_ID_BYTES, field="key_id"),
        ciphertext=ciphertext,
        epoch=state.epoch,
    )


_APPLY: dict[str, Any] = {
    "add_member": _add_member,
    "remove_member": _remove_member,
    "set_role": _set_role,
    "add_device": _add_device,
    "remove_device": _remove_device,
    "set_identity": _set_identity,
    "set_policy": _set_policy,
    "set_archiver": _set_archiver,
    "set_profile": _set_profile,
}


# Helpers to write content -----------------------------------------------------------


def member_content(
    national_id: str, role: str, identity_key: bytes, devices: list[RoomDevice]
) -> JsonObject:
    return {
        "national_id": national_id,
        "role": role,
        "identity_key": b64u(identity_key),
        "devices": [d.entry_json() for d in devices],
    }


def create_content(
    *, kind: str, members: list[JsonObject], policy: Policy, archiver: RoomDevice | None = None
) -> JsonObject:
    return {
        "kind": kind,
        "members": members,
        "policy": policy.to_json(),
        "archiver": archiver.archiver_json() if archiver else None,
    }


__all__ = [
    "ACTIONS",
    "KINDS",
    "MAX_DEVICES_PER_MEMBER",
    "MAX_EVENT_BYTES",
    "MAX_MEMBERS",
    "ROLES",
    "ROOM_ID_BYTES",
    "DeviceEntry",
    "DeviceRef",
    "Member",
    "Policy",
    "Profile",
    "RoomDevice",
    "RoomState",
    "StateEvent",
    "apply_event",
    "default_policy",
    "sign_event",
]
