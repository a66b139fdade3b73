"""Sharing a sender key with the devices of a room (protocol §10.7).

A device's sender key goes to every device of the *verified* room state that lacks it,
and only after checking, for each, what the server cannot forge:

* the member's identity key in the room state is the one the key-transparency log holds
  for them now (a member whose identity key changed must be signed in again by an
  admin, ``set_identity``);
* the device is certified in the log under that identity key and not revoked. A
  revoked device counts as removed: it gets nothing, the caller is told so it can have
  the device removed from the room, and the others still get the key — a lost phone
  does not stop a care team;
* its current key-agreement key is signed by the device and not expired
  (``e2ee.kex``); the share is sealed to it.

A device the log does not know at all is an attack (the server inserted it): nothing
is shared with anyone and a ``key_transparency`` alert is raised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from client.api import RestApi
from client.directory import LOOKUP_REUSE_SECONDS, KeyDirectory, VerifiedIdentity
from client.events import SecurityError
from client.rooms import LocalRoom
from client.trust import Alert
from e2ee import kex, shares
from e2ee.encoding import b64u
from e2ee.errors import CryptoError
from e2ee.identity import DeviceKind
from e2ee.keys import DeviceKeyPair
from e2ee.state import RoomDevice

DeviceRef = tuple[str, int]
BATCH = 500
KEX_LOOKUP = 200  # devices per key-agreement key lookup (docs/protocol.md §10.4.3)


@dataclass
class ShareResult:
    """What a share round found: devices to remove from the room (revoked in the log)
    and devices skipped for now (no fresh key-agreement key: offline too long)."""

    revoked: list[RoomDevice] = field(default_factory=list)
    skipped: list[RoomDevice] = field(default_factory=list)


async def _identities(
    directory: KeyDirectory, devices: list[RoomDevice], archiver: RoomDevice | None
) -> dict[DeviceRef, VerifiedIdentity]:
    found: dict[tuple[str, str], VerifiedIdentity] = {}
    fresh: set[tuple[str, str]] = set()
    out: dict[DeviceRef, VerifiedIdentity] = {}
    for device in devices:
        kind: DeviceKind = "archiver" if device == archiver else "device"
        key = (device.national_id, kind)
        if key not in found:
            found[key] = await directory.identity_of(
                device.national_id, kind=kind, reuse_seconds=LOOKUP_REUSE_SECONDS
            )
        if device.device not in found[key].devices and key not in fresh:
            # A reused lookup may predate the device (linked or recovered since): the
            # log is asked again before the device counts as unknown.
            found[key] = await directory.identity_of(device.national_id, kind=kind)
            fresh.add(key)
        out[device.ref] = found[key]
    return out


async def _kex_keys(
    api: RestApi, devices: list[RoomDevice], seen: dict[str, int], now_ms: int
) -> dict[DeviceRef, kex.KexKey]:
    """The verified, unexpired key-agreement keys of ``devices``; a serial lower than
    one already seen for a device is refused (the server going back to an older key)."""
    numbers = sorted({d.device for d in devices})
    documents: dict[int, bytes] = {}
    for start in range(0, len(numbers), KEX_LOOKUP):
        batch = numbers[start : start + KEX_LOOKUP]
        answer = await api.call(
            "GET", "devices/kex", params={"devices": ",".join(str(n) for n in batch)}
        )
        documents.update((int(i["device"]), i["kex"].encode("utf-8")) for i in answer["keys"])
    verified: dict[DeviceRef, kex.KexKey] = {}
    for device in devices:
        document = documents.get(device.device)
        if document is None:
            continue
        try:
            key = kex.verify_kex(
                document,
                national_id=device.national_id,
                device=device.device,
                sign_key=device.sign_key,
                now_ms=now_ms,
            )
        except CryptoError:
            continue
        label = f"{device.national_id}/{device.device}"
        if key.serial < seen.get(label, 0):
            continue
        seen[label] = key.serial
        verified[device.ref] = key
    return verified


async def share_sender_key(
    *,
    room: LocalRoom,
    me: DeviceRef,
    key_pair: DeviceKeyPair,
    api: RestApi,
    directory: KeyDirectory,
    alert: Alert,
    kex_seen: dict[str, int],
    now_ms: int | None = None,
) -> ShareResult:
    """Send ``room.outbound`` (which must be set), with the room's profile key if this
    device holds it, to every room device that lacks it, checked as the module says.
    Raises SecurityError (after an alert) when a device is not in the log at all."""
    outbound = room.outbound
    if outbound is None:
        raise ValueError("the room has no sender key to share")
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    missing = [d for d in room.state.devices() if d.ref != me and d.ref not in outbound.shared_with]
    result = ShareResult()
    if not missing:
        return result
    identities = await _identities(directory, missing, room.state.archiver)
    ready: list[RoomDevice] = []
    for device in missing:
        identity = identities[device.ref]
        role = "an archiver" if device == room.state.archiver else "a member's device"
        if identity.identity_key != device.identity_key:
            if identity.identity_key is None or device == room.state.archiver:
                detail = (
                    f"device {device.device} of {device.national_id} is not certified as {role}"
                )
                await alert("key_transparency", room.room_id, detail)
                raise SecurityError(detail)
            detail = (
                f"{device.national_id}'s identity key in the room is not the one the log "
                "holds: an admin must accept their new identity key"
            )
            await alert("identity_changed", room.room_id, detail)
            result.skipped.append(device)
            continue
        certified = identity.devices.get(device.device)
        if certified is None:
            if await directory.was_revoked(device.national_id, device.device, device.sign_key):
                await alert(
                    "device_revoked",
                    room.room_id,
                    f"device {device.device} of {device.national_id} was revoked: it gets no key",
                )
                result.revoked.append(device)
                continue
            detail = f"device {device.device} of {device.national_id} is not certified as {role}"
            await alert("key_transparency", room.room_id, detail)
            raise SecurityError(detail)
        if certified.keys.sign_key != device.sign_key:
            detail = (
                f"device {device.device} of {device.national_id} is not certified as {role} "
                "with these keys"
            )
            await alert("key_transparency", room.room_id, detail)
            raise SecurityError(detail)
        ready.append(device)
    keys = await _kex_keys(api, ready, kex_seen, now_ms)
    profile_key = room.profile_key()
    messages: list[tuple[DeviceRef, dict[str, Any]]] = []
    for device in ready:
        key = keys.get(device.ref)
        if key is None:
            await alert(
                "device_unreachable",
                room.room_id,
                f"device {device.device} of {device.national_id} has no fresh key: it gets "
                "the key once it is back online",
            )
            result.skipped.append(device)
            continue
        sealed = shares.seal_share(
            session=outbound,
            epoch=room.state.epoch,
            key_pair=key_pair,
            recipient=device.ref,
            kex=key,
            profile_key=profile_key,
        )
        messages.append((device.ref, {"device": device.device, "body": b64u(sealed)}))
    for start in range(0, len(messages), BATCH):
        batch = messages[start : start + BATCH]
        await api.call("POST", "devices/messages", json={"messages": [m for _, m in batch]})
        outbound.shared_with.update(ref for ref, _ in batch)
    return result
