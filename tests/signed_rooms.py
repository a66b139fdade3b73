"""Rooms for server-side tests, made the only way rooms are made now: with signed
room-state events from devices whose keys are certified in the transparency log.

``create_room``, ``add_member`` and ``remove_member`` take the same arguments the
unsigned service functions used to take, so tests about messaging stay about
messaging. Each practitioner gets one certified "keys" device; its private keys stay in
this process (as they would stay on a phone).
"""

from __future__ import annotations

from chat.models import Device, Room
from chat.services.devices import DeviceIdentity, do_issue_device_token
from chat.services.rooms import do_apply_state_event, do_create_room, verified_state
from directory.models import Practitioner
from e2ee import state as chain
from e2ee.keys import DeviceKeyPair
from tests import identities
from tests.identities import certify_with_services

_KEYS: dict[int, DeviceKeyPair] = {}
NOW_MS = 1_795_392_000_000


def certified_device(practitioner: Practitioner | str) -> tuple[DeviceIdentity, DeviceKeyPair]:
    """The practitioner's certified signing device (created on first use)."""
    national_id = practitioner if isinstance(practitioner, str) else practitioner.national_id
    for device in Device.objects.filter(
        practitioner_id=national_id, name="keys", revoked_at__isnull=True
    ).exclude(public_keys={}):
        if device.pk in _KEYS:
            return DeviceIdentity(device.pk, national_id), _KEYS[device.pk]
    owner = Practitioner.objects.get(pk=national_id)
    device, _token = do_issue_device_token(practitioner=owner, device_name="keys")
    keys = DeviceKeyPair.generate()
    identity = DeviceIdentity(device_id=device.pk, practitioner_id=national_id)
    certify_with_services(identity, keys)
    _KEYS[device.pk] = keys
    return identity, keys


def room_device(national_id: str) -> chain.RoomDevice:
    identity, keys = certified_device(national_id)
    return identities.room_device(national_id, identity.device_id, keys)


def creation_event(*, creator: Practitioner, kind: str, member_ids: list[str]) -> bytes:
    identity, keys = certified_device(creator)
    others = sorted(set(member_ids) - {creator.national_id})
    members = [identities.member(creator.national_id, "admin", [room_device(creator.national_id)])]
    members += [identities.member(nid, "member", [room_device(nid)]) for nid in others]
    return chain.sign_event(
        state=None,
        room=chain.new_room_id(),
        author=(identity.practitioner_id, identity.device_id),
        key_pair=keys,
        action="create",
        content=chain.create_content(kind=kind, members=members, policy=chain.default_policy(kind)),
        timestamp=NOW_MS,
    )


def create_room(*, creator: Practitioner, kind: str, member_ids: list[str]) -> Room:
    identity, _ = certified_device(creator)
    event = creation_event(creator=creator, kind=kind, member_ids=member_ids)
    return do_create_room(identity=identity, event=event)


def next_event(*, actor: Practitioner | str, room_id: int, action: str, content: dict) -> bytes:
    identity, keys = certified_device(actor)
    current = verified_state(room_id=room_id)
    assert current is not None
    return chain.sign_event(
        state=current,
        room=current.room,
        author=(identity.practitioner_id, identity.device_id),
        key_pair=keys,
        action=action,
        content=content,
        timestamp=NOW_MS,
    )


def add_member(
    *, actor: Practitioner, room_id: int, practitioner_id: str, role: str = "member"
) -> None:
    identity, _ = certified_device(actor)
    content = identities.member(practitioner_id, role, [room_device(practitioner_id)])
    event = next_event(actor=actor, room_id=room_id, action="add_member", content=content)
    do_apply_state_event(identity=identity, room_id=room_id, event=event)


def remove_member(*, actor: Practitioner, room_id: int, practitioner_id: str) -> None:
    identity, _ = certified_device(actor)
    event = next_event(
        actor=actor,
        room_id=room_id,
        action="remove_member",
        content={"national_id": practitioner_id},
    )
    do_apply_state_event(identity=identity, room_id=room_id, event=event)
