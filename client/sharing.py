"""Sharing a sender key with the devices of a room (protocol §10.7).

A device's sender key goes to every device of the *verified* room state that lacks it,
and only after that device's keys were found certified in the key-transparency log:
the server's word about who is in a room, or about anyone's keys, is never enough.
"""

from __future__ import annotations

from client.api import RestApi
from client.directory import KeyDirectory, VerifiedDevice, certified_role
from client.events import SecurityError
from client.rooms import LocalRoom
from client.trust import Alert
from e2ee import shares
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair
from e2ee.transparency import DeviceKind

DeviceRef = tuple[str, int]


async def share_sender_key(
    *,
    room: LocalRoom,
    me: DeviceRef,
    key_pair: DeviceKeyPair,
    api: RestApi,
    directory: KeyDirectory,
    alert: Alert,
) -> None:
    """Send ``room.outbound`` (which must be set) to every room device that lacks it,
    each checked against the transparency log first. A device whose keys the log does
    not certify raises an alert and SecurityError, and nothing is sent."""
    outbound = room.outbound
    if outbound is None:
        raise ValueError("the room has no sender key to share")
    missing = [d for d in room.state.devices() if d.ref != me and d.ref not in outbound.shared_with]
    if not missing:
        return
    certified: dict[tuple[str, DeviceKind], dict[int, VerifiedDevice]] = {}
    messages = []
    for device in missing:
        # The archiver must be certified as an organisation's archiver, and every
        # member's device as a practitioner's device.
        kind: DeviceKind = "archiver" if device == room.state.archiver else "device"
        if (device.national_id, kind) not in certified:
            certified[device.national_id, kind] = await directory.devices_of(
                device.national_id, kind=kind
            )
        found = certified[device.national_id, kind].get(device.device)
        if found is None or found.keys != device.keys:
            detail = (
                f"device {device.device} of {device.national_id} is not certified"
                f" as {certified_role(kind)}"
            )
            await alert("key_transparency", room.room_id, detail)
            raise SecurityError(detail)
        sealed = shares.seal_share(
            session=outbound, epoch=room.state.epoch, key_pair=key_pair, recipient=device
        )
        messages.append({"device": device.device, "body": b64u(sealed)})
    await api.call("POST", "devices/messages", json={"messages": messages})
    outbound.shared_with.update(d.ref for d in missing)
