"""How a device comes to hold its practitioner's identity (docs/protocol.md §10.4):

* the **first device** makes the identity key, publishes it in the log, certifies
  itself with it, and shows the **recovery code** once;
* a **linked device** gets the identity from an existing device that approves its link
  code (``e2ee.linking``), then its history keys;
* a **recovered device** gets it back from the backup sealed to the recovery code —
  the same identity key, so no contact's safety number changes;
* a device that **logs in again** (its token expired, or its PSC session ended and
  revoked it) still holds the identity key and certifies its new device number itself.

Then the device publishes its key-agreement key, joins its practitioner's rooms by
adding itself (signed with the identity key's certificate), and removes the device it
replaces.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from client.account import Account
from client.api import ApiError
from client.devicekeys import DeviceKeys, publish_kex
from client.directory import KeyTransparencyError
from client.events import SecurityError
from client.history import (
    KEYS_PER_TRANSFER,
    PROFILE_KEYS_PER_TRANSFER,
    HistoryKey,
    RoomProfileKey,
    seal_transfer,
)
from e2ee import linking, recovery
from e2ee.encoding import JsonObject, b64u, canonical_json, unb64u
from e2ee.errors import CryptoError
from e2ee.identity import DeviceKind

if TYPE_CHECKING:
    from client.session import RelaisClient

LINK_POLL_SECONDS = 1.0


class IdentityExistsError(SecurityError):
    """The practitioner already has an identity: link this device, or recover it."""


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _certify(client: RelaisClient, *, kind: DeviceKind) -> None:
    """Certify this device's keys with the identity key it holds and publish its
    key-agreement key."""
    keys = client.device_keys
    keys.stamp(_now_ms())
    await client.directory.register_device(
        identity=client.identity.private,
        key_pair=keys.pair,
        national_id=client.national_id,
        device=client.device_id,
        kind=kind,
    )
    client.trust.know_device(client.device_id, keys.pair.public.sign_key)
    await publish_kex(client.api, keys, national_id=client.national_id, device=client.device_id)
    client.save()


def _begin(client: RelaisClient, *, token: str, device: int, national_id: str) -> None:
    """Start a new device in the store (keeping the account, rooms and history a previous
    device of the same store held)."""
    old = client.store.data.get("device")
    if old is not None and old != device:
        client.store.data.setdefault("replaced_devices", []).append(old)
    client.store.data.update(
        token=token, device=device, national_id=national_id, keys=DeviceKeys.generate().data
    )
    client.api.token = token


async def register_first_device(
    client: RelaisClient, *, token: str, device: int, national_id: str, kind: DeviceKind = "device"
) -> recovery.RecoveryCode:
    """Make the practitioner's identity on this, their first device; the recovery code
    to show once. IdentityExistsError if they already have one."""
    _begin(client, token=token, device=device, national_id=national_id)
    await client.start_log()
    account, code = Account.create()
    try:
        await client.directory.register_identity(
            identity=account.identity.private, national_id=national_id
        )
    except ApiError as error:
        if error.code != "conflict":
            raise
        raise IdentityExistsError(
            f"{national_id} already uses Relais on another device: link this one from it "
            "(a QR or short code) or recover with the recovery code"
        ) from None
    client.store.data["account"] = account.data
    await _certify(client, kind=kind)
    await store_identity_backup(client)
    return code


async def store_identity_backup(client: RelaisClient) -> None:
    sealed = client.account.identity_backup(client.national_id)
    if sealed is not None:
        await client.api.call("PUT", "backup/identity", json={"sealed": b64u(sealed)})


async def _check_identity_is_logged(client: RelaisClient, kind: DeviceKind) -> None:
    identity = await client.directory.identity_of(client.national_id, kind=kind)
    if identity.identity_key is None:
        raise KeyTransparencyError(
            "the log has no identity key for this practitioner: was the server's database reset?"
        )
    if identity.identity_key != client.identity.public:
        raise KeyTransparencyError(
            "the identity key held is not the one the log holds for this practitioner"
        )


async def continue_as_new_device(
    client: RelaisClient,
    *,
    token: str,
    device: int,
    national_id: str,
    kind: DeviceKind = "device",
) -> None:
    """A store that holds the identity got a new device number (its practitioner logged
    in again, or the store was given the identity before its first device): certify the
    device with the identity key held, join the rooms and remove the device it
    replaces. An identity the log does not know is published only for a store that never
    had a device (KeyTransparencyError otherwise: the server forgot this practitioner)."""
    if "account" not in client.store.data:
        raise SecurityError("this key store holds no identity")
    first = "device" not in client.store.data
    _begin(client, token=token, device=device, national_id=national_id)
    await client.start_log()
    if first:
        try:
            await client.directory.register_identity(
                identity=client.identity.private, national_id=national_id
            )
        except ApiError as error:
            if error.code != "conflict":
                raise
            await _check_identity_is_logged(client, kind)  # published already: ours?
    else:
        await _check_identity_is_logged(client, kind)
    await _certify(client, kind=kind)
    await client.settle_devices()


# Linking ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingLink:
    """A new device's open link request: show ``code`` (QR payload or short code)."""

    code: linking.LinkCode
    request: JsonObject


async def start_link(
    client: RelaisClient, *, token: str, device: int, national_id: str
) -> PendingLink:
    """A new device asks to be linked; show the returned code on its screen."""
    _begin(client, token=token, device=device, national_id=national_id)
    await client.start_log()
    public = client.device_keys.pair.public
    request = linking.link_request(
        national_id=national_id, device=device, sign_key=public.sign_key, kex_key=public.kex_key
    )
    answer = await client.api.call(
        "POST", "devices/link-requests", json={"request": canonical_json(request).decode()}
    )
    client.save()
    code = linking.LinkCode(
        link_id=unb64u(answer["link_id"], length=linking.LINK_ID_BYTES),
        commitment=linking.commitment(request),
    )
    return PendingLink(code=code, request=request)


async def finish_link(
    client: RelaisClient, pending: PendingLink, *, wait_seconds: float = 600
) -> None:
    """Wait for an existing device to approve, then take the identity it sent."""
    async with asyncio.timeout(wait_seconds):
        while True:
            answer = await client.api.call(
                "GET", f"devices/link-requests/{pending.code.link_id_text}"
            )
            if answer["bundle"] is not None:
                break
            await asyncio.sleep(LINK_POLL_SECONDS)  # polling: the approval is a REST write
    kex_private = client.device_keys.kex_private(1)
    assert kex_private is not None
    try:
        bundle = linking.open_bundle(unb64u(answer["bundle"]), kex_private)
        if (
            bundle.get("national_id") != client.national_id
            or bundle.get("device") != client.device_id
        ):
            raise SecurityError("the link bundle is for another device")
        account = Account.from_bundle(bundle)
    except CryptoError as error:
        raise SecurityError(f"the link bundle is invalid: {error}") from None
    client.store.data["account"] = account.data
    await _check_identity_is_logged(client, "device")
    client.trust.adopt(bundle.get("trust", {}))
    await _certify(client, kind="device")
    await client.settle_devices()


async def approve_link(
    client: RelaisClient,
    code_text: str,
    *,
    confirm: Callable[[int, str], Awaitable[bool]],
) -> int:
    """From an existing device: take a new device's code, check its request, ask the
    user (``confirm(device, name)``), then send it the identity and the history keys.
    The new device's number."""
    try:
        code = linking.LinkCode.parse(code_text)
    except CryptoError:
        raise SecurityError("this is not a Relais link code") from None
    answer = await client.api.call("GET", f"devices/link-requests/{code.link_id_text}")
    request = linking.parse_request(answer["request"].encode("utf-8"))
    if not code.matches(request):
        raise SecurityError(
            "the request does not match the code shown on the new device: do not link it"
        )
    if request["national_id"] != client.national_id or request["device"] != answer["device"]:
        raise SecurityError("the request is for another practitioner or device")
    device = int(request["device"])
    if not await confirm(device, str(answer["device_name"])):
        raise SecurityError("linking cancelled")
    bundle: JsonObject = {
        "v": 2,
        "type": "link_bundle",
        "national_id": client.national_id,
        "device": device,
        **client.account.bundle_part(),
        "trust": client.trust.bundle_part(),
    }
    sealed = linking.seal_bundle(request=request, bundle=bundle)
    await client.api.call(
        "POST", f"devices/link-requests/{code.link_id_text}/approve", json={"bundle": b64u(sealed)}
    )
    client.trust.know_device(device, unb64u(request["sign_key"], length=32))
    client.save()
    await forward_history(client, device=device, kex_key=unb64u(request["kex_key"], length=32))
    return device


async def forward_history(client: RelaisClient, *, device: int, kex_key: bytes) -> int:
    """Send every history key this device holds, and the key of each room's current
    profile, to a newly linked device of the same practitioner, sealed to it; how many
    history keys. The profile keys go in messages of their own, so a device that does
    not know them yet still takes every history key."""
    keys = client.history.keys()
    profile_keys = client.held_profile_keys()
    messages: list[dict[str, Any]] = []
    parts: list[tuple[list[HistoryKey], list[RoomProfileKey]]] = [
        (keys[start : start + KEYS_PER_TRANSFER], [])
        for start in range(0, len(keys), KEYS_PER_TRANSFER)
    ] + [
        ([], profile_keys[start : start + PROFILE_KEYS_PER_TRANSFER])
        for start in range(0, len(profile_keys), PROFILE_KEYS_PER_TRANSFER)
    ]
    for history_part, profile_part in parts:
        sealed = seal_transfer(
            keys=history_part,
            sender=client.me,
            key_pair=client.key_pair,
            recipient=(client.national_id, device),
            recipient_kex=kex_key,
            profile_keys=profile_part,
        )
        messages.append({"device": device, "body": b64u(sealed)})
    for start in range(0, len(messages), 500):
        await client.api.call(
            "POST", "devices/messages", json={"messages": messages[start : start + 500]}
        )
    return len(keys)


# Recovery --------------------------------------------------------------------------


async def recover(
    client: RelaisClient, *, token: str, device: int, national_id: str, code_text: str
) -> int:
    """Every device was lost: get the identity back with the recovery code on a new
    device, then the rooms, their history and their profiles. How many history keys
    came back."""
    from client.history import restore_from_backup

    try:
        code = recovery.RecoveryCode.parse(code_text)
    except CryptoError:
        raise SecurityError("this is not a recovery code (32 letters and digits)") from None
    _begin(client, token=token, device=device, national_id=national_id)
    await client.start_log()
    try:
        answer = await client.api.call("GET", "backup/identity")
    except ApiError as error:
        if error.code == "not_found":
            raise SecurityError("no identity backup to recover from") from None
        raise
    try:
        restored = recovery.restore_identity(
            recovery.open_sealed(code, unb64u(answer["sealed"])), national_id=national_id
        )
    except CryptoError as error:
        raise SecurityError(f"cannot recover: {error.detail}") from None
    client.store.data["account"] = Account.from_parts(
        identity_private=restored.identity_private,
        account_secret=restored.account_secret,
        recovery_key=code.public_key(),
    ).data
    await _check_identity_is_logged(client, "device")
    await _certify(client, kind="device")
    profile_keys: list[RoomProfileKey] = []
    count = await restore_from_backup(client.api, code, client.history, profile_keys)
    client.save()
    await client.settle_devices()
    await client.adopt_profile_keys(profile_keys, source="backed-up profile key", quiet=True)
    return count
