"""Rooms and membership, driven by the signed room-state chain.

Every membership change is a room-state event signed by a member's device
(``e2ee.state``). The server verifies it with the same code the clients run — the
signature, the chain (epoch and previous hash), who may do what — and also that every
device key it names is certified in the key-transparency log, then stores it in order
and derives the ``Membership`` rows from the verified state, in one transaction under
the room's row lock. Clients verify the chain again: the server's checks are defence
in depth, not what members have to trust (docs/e2ee.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from chat.errors import ErrorCode, RelaisError
from chat.fanout import HubEvent, practitioner_topic, publish_on_commit, room_topic
from chat.frames import encode
from chat.models import Membership, Role, Room, RoomStateEvent
from chat.services.access import access_admin, access_membership, access_reader
from chat.services.devices import DeviceIdentity
from directory.models import Practitioner, Source
from e2ee import state as chain
from e2ee.encoding import b64u
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.transparency import DeviceKind, LabelChain

MAX_ROOM_MEMBERS = chain.MAX_MEMBERS
# Actions only an admin may take; the others a member may also take for themselves.
_ADMIN_ACTIONS = {"add_member", "set_role", "set_policy", "set_archiver"}


@dataclass(frozen=True, slots=True)
class RoomPosition:
    """Where a room stands for one member: its newest seq, and where their history starts."""

    room_id: int
    last_seq: int
    joined_after_seq: int


def _refuse(error: CryptoError) -> RelaisError:
    """The stable API code for a chain verification failure."""
    if error.code == CryptoErrorCode.NOT_AUTHORISED:
        if error.detail == "not a member":
            return RelaisError(ErrorCode.NOT_MEMBER, "The target is not a member.")
        if error.detail == "only an admin device may do this":
            return RelaisError(ErrorCode.NOT_ADMIN)
        if error.detail.startswith("a direct room"):
            return RelaisError(ErrorCode.BAD_REQUEST, "A direct room has exactly two people.")
        return RelaisError(ErrorCode.CONFLICT, error.detail.capitalize() + ".")
    return RelaisError(ErrorCode.BAD_STATE_EVENT, error.detail)


def _check_author(body: dict[str, object], identity: DeviceIdentity) -> None:
    author = body["author"]
    assert isinstance(author, dict)  # checked by parse_event
    if (author["national_id"], author["device"]) != (identity.practitioner_id, identity.device_id):
        raise RelaisError(ErrorCode.BAD_STATE_EVENT, "The event must be signed by this device.")


def _check_certified(*, devices: list[chain.RoomDevice], archiver: chain.RoomDevice | None) -> None:
    """Every device key the state introduces is certified in the transparency log under
    the identity key the state gives its owner — which must be that person's current
    identity key in the log —, unrevoked, with the kind its place requires: ``device``
    for a member's device, ``archiver`` for the archiver. So a practitioner's device
    cannot be passed off as an organisation's archiver, nor an archiver slipped in as a
    member's device, nor an old identity key kept after a reset."""
    from keylog.services import chain_of

    chains: dict[str, LabelChain] = {}
    for device in devices:
        kind: DeviceKind = "archiver" if device == archiver else "device"
        if device.national_id not in chains:
            chains[device.national_id] = chain_of(device.national_id)
        log = chains[device.national_id]
        certified = log.devices.get(device.device)
        if (
            log.identity_key != device.identity_key
            or certified is None
            or certified.kind != kind
            or certified.sign_key != device.sign_key
        ):
            role = "an archiver" if kind == "archiver" else "a member's device"
            raise RelaisError(
                ErrorCode.KEY_NOT_CERTIFIED,
                f"Device {device.device} of {device.national_id} (as {role}).",
            )


def _check_practitioners(national_ids: list[str]) -> None:
    """The new members are active practitioners; an organisation is never a member (its
    archiver is named as the room's archiver instead)."""
    found = dict(
        Practitioner.objects.filter(national_id__in=national_ids, is_active=True).values_list(
            "national_id", "source"
        )
    )
    missing = sorted(set(national_ids) - set(found))
    if missing:
        raise RelaisError(ErrorCode.NOT_FOUND, f"Unknown practitioner: {', '.join(missing)}.")
    organisations = sorted(nid for nid, source in found.items() if source == Source.ORGANISATION)
    if organisations:
        raise RelaisError(
            ErrorCode.BAD_STATE_EVENT,
            f"An organisation cannot be a member: {', '.join(organisations)}.",
        )


def _mirror_archiver(*, room: Room, before: chain.RoomState | None, after: chain.RoomState) -> None:
    """Keep ``room.archiver*`` equal to the verified state. A newly named archiver reads
    from now on (``archiver_after_seq``) and is told, so a running archiver picks the
    room up. Caller holds the room row lock (or creates the room)."""
    old = before.archiver.ref if before is not None and before.archiver else None
    new = after.archiver.ref if after.archiver else None
    room.archiver = after.archiver.archiver_json() if after.archiver else None
    if new == old:
        return
    room.archiver_device_id = new[1] if new else None
    room.archiver_after_seq = room.last_seq
    if new is not None:
        frame = {"type": "room_state", "room": room.pk, "epoch": after.epoch}
        publish_on_commit(
            practitioner_topic(new[0]), HubEvent(kind="frame", room=room.pk, text=encode(frame))
        )


def _parse(raw: bytes) -> dict[str, object]:
    try:
        body, _signature = chain.parse_event(raw)
    except CryptoError as error:
        raise RelaisError(ErrorCode.BAD_STATE_EVENT, error.detail) from None
    return body


def verified_state(*, room_id: int) -> chain.RoomState | None:
    """Replay and verify the room's stored chain."""
    events = [
        bytes(body)
        for body in RoomStateEvent.objects.filter(room_id=room_id)
        .order_by("epoch")
        .values_list("body", flat=True)
    ]
    return chain.replay_chain(events) if events else None


def do_create_room(*, identity: DeviceIdentity, event: bytes) -> Room:
    """Create a room from its signed creation event; the signer is its first admin."""
    body = _parse(event)
    _check_author(body, identity)
    try:
        created, verified = chain.apply_event(None, event)
    except CryptoError as error:
        raise _refuse(error) from None
    _check_practitioners(sorted(created.members))
    _check_certified(devices=created.devices(), archiver=created.archiver)
    try:
        with transaction.atomic():
            room = Room.objects.create(
                kind=created.kind,
                created_by_id=identity.practitioner_id,
                uid=created.room,
                state_epoch=0,
                state_head=b64u(verified.hash),
                policy=created.policy.to_json(),
            )
            _mirror_archiver(room=room, before=None, after=created)
            room.save(update_fields=["archiver", "archiver_device", "archiver_after_seq"])
            RoomStateEvent.objects.create(
                room=room,
                epoch=0,
                action="create",
                author_device_id=identity.device_id,
                hash=b64u(verified.hash),
                body=event,
            )
            Membership.objects.bulk_create(
                Membership(room=room, practitioner_id=member.national_id, role=member.role)
                for member in created.members.values()
            )
            for member in created.members.values():
                _announce(
                    room_id=room.pk,
                    practitioner_id=member.national_id,
                    role=member.role,
                    seq=0,
                    added=True,
                    epoch=0,
                )
    except IntegrityError:
        raise RelaisError(ErrorCode.CONFLICT, "A room with this id exists.") from None
    return room


def do_apply_state_event(*, identity: DeviceIdentity, room_id: int, event: bytes) -> RoomStateEvent:
    """Verify and append the next event of a room, then derive its memberships.

    Raises NOT_MEMBER, NOT_ADMIN, STALE_STATE (another event came first: fetch and sign
    again), BAD_STATE_EVENT, KEY_NOT_CERTIFIED, NOT_FOUND, CONFLICT."""
    body = _parse(event)
    _check_author(body, identity)
    action = str(body["action"])
    content = body["content"]
    assert isinstance(content, dict)  # checked by parse_event
    with transaction.atomic():
        access_membership(room_id=room_id, practitioner_id=identity.practitioner_id)
        if action in _ADMIN_ACTIONS or content.get("national_id", identity.practitioner_id) != (
            identity.practitioner_id
        ):
            access_admin(room_id=room_id, practitioner_id=identity.practitioner_id)
        room = Room.objects.select_for_update().get(pk=room_id)
        if body["epoch"] != room.state_epoch + 1 or body["prev"] != room.state_head:
            raise RelaisError(ErrorCode.STALE_STATE)
        before = verified_state(room_id=room_id)
        if before is None:
            raise RelaisError(ErrorCode.BAD_STATE_EVENT, "This room has no signed state.")
        try:
            after, verified = chain.apply_event(before, event)
        except CryptoError as error:
            raise _refuse(error) from None
        _check_practitioners(sorted(set(after.members) - set(before.members)))
        known = set(before.devices())
        _check_certified(
            devices=[d for d in after.devices() if d not in known], archiver=after.archiver
        )
        stored = RoomStateEvent.objects.create(
            room=room,
            epoch=verified.epoch,
            action=action,
            author_device_id=identity.device_id,
            hash=b64u(verified.hash),
            body=event,
        )
        room.state_epoch = verified.epoch
        room.state_head = b64u(verified.hash)
        room.policy = after.policy.to_json()
        _mirror_archiver(room=room, before=before, after=after)
        room.save(
            update_fields=[
                "state_epoch",
                "state_head",
                "policy",
                "archiver",
                "archiver_device",
                "archiver_after_seq",
            ]
        )
        changed = _derive_memberships(room=room, before=before, after=after)
        if not changed:  # membership frames already tell members to fetch the state
            publish_on_commit(
                room_topic(room.pk),
                HubEvent(
                    kind="frame",
                    room=room.pk,
                    text=encode({"type": "room_state", "room": room.pk, "epoch": verified.epoch}),
                ),
            )
    return stored


def _derive_memberships(*, room: Room, before: chain.RoomState, after: chain.RoomState) -> bool:
    """Make the Membership rows say what the verified state says; True if someone joined
    or left. Caller holds the room row lock, so no envelope slips between the position
    read and the change."""
    added = sorted(set(after.members) - set(before.members))
    removed = sorted(set(before.members) - set(after.members))
    for national_id in added:
        role = after.members[national_id].role
        Membership.objects.create(
            room=room, practitioner_id=national_id, role=role, joined_after_seq=room.last_seq
        )
        _announce(
            room_id=room.pk,
            practitioner_id=national_id,
            role=role,
            seq=room.last_seq,
            added=True,
            epoch=after.epoch,
        )
    for national_id in removed:
        Membership.objects.filter(room=room, practitioner_id=national_id).delete()
        _announce(
            room_id=room.pk,
            practitioner_id=national_id,
            role=before.members[national_id].role,
            seq=room.last_seq,
            added=False,
            epoch=after.epoch,
        )
    for national_id, member in after.members.items():
        old = before.members.get(national_id)
        if old is not None and old.role != member.role:
            Membership.objects.filter(room=room, practitioner_id=national_id).update(
                role=member.role
            )
    return bool(added or removed)


def state_events(*, practitioner_id: str, room_id: int, after_epoch: int) -> list[RoomStateEvent]:
    """The room's chain after ``after_epoch`` (-1: from creation), for a member or the
    organisation archiving the room (it verifies the chain like a member) — and for a
    former member, up to the event that removed them: their app verifies its removal
    itself instead of believing a frame (docs/protocol.md §10.11)."""
    events = RoomStateEvent.objects.filter(room_id=room_id, epoch__gt=after_epoch)
    try:
        access_reader(room_id=room_id, practitioner_id=practitioner_id)
    except RelaisError:
        removal = _removal_of(room_id=room_id, practitioner_id=practitioner_id)
        if removal is None:
            raise
        events = events.filter(epoch__lte=removal)
    return list(events.order_by("epoch"))


def _removal_of(*, room_id: int, practitioner_id: str) -> int | None:
    """The epoch of the newest event that removed ``practitioner_id`` from the room."""
    for epoch, body in (
        RoomStateEvent.objects.filter(room_id=room_id, action="remove_member")
        .order_by("-epoch")
        .values_list("epoch", "body")
    ):
        content = json.loads(bytes(body))["event"]["content"]
        if content.get("national_id") == practitioner_id:
            return int(epoch)
    return None


def _announce(
    *, room_id: int, practitioner_id: str, role: str, seq: int, added: bool, epoch: int
) -> None:
    action = "added" if added else "removed"
    text = encode(
        {
            "type": "membership",
            "room": room_id,
            "action": action,
            "practitioner": practitioner_id,
            "role": role,
            "epoch": epoch,
        }
    )
    event = HubEvent(
        kind=f"member_{action}", room=room_id, seq=seq, text=text, practitioner=practitioner_id
    )
    publish_on_commit(room_topic(room_id), event)
    if added:
        # The newcomer's connections are not listening to the room yet.
        publish_on_commit(practitioner_topic(practitioner_id), event)


def room_positions(*, practitioner_id: str) -> list[RoomPosition]:
    """The rooms of a practitioner with their newest seq and the start of visible history."""
    rows = Membership.objects.filter(practitioner_id=practitioner_id).values_list(
        "room_id", "room__last_seq", "joined_after_seq"
    )
    return [
        RoomPosition(room_id=r, last_seq=last, joined_after_seq=start) for r, last, start in rows
    ]


def rooms_of(*, practitioner_id: str) -> list[Room]:
    """The rooms of a member, and for an organisation the rooms its archiver devices
    archive; newest activity first."""
    rooms = {
        room.pk: room
        for query in (
            Room.objects.filter(memberships__practitioner_id=practitioner_id),
            Room.objects.filter(archiver_device__practitioner_id=practitioner_id),
        )
        for room in query.prefetch_related("memberships")
    }
    return sorted(rooms.values(), key=lambda room: (-room.last_seq, room.pk))


__all__ = ["MAX_ROOM_MEMBERS", "Role", "do_apply_state_event", "do_create_room"]
