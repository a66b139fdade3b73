"""The to-device queue of this device: sender-key shares, history keys from a device
of the same practitioner, and server notices (hints to check the log)
(docs/protocol.md §10.7, §10.9). Methods of ``RelaisClient``, kept here to keep
``client/session.py`` readable; each names ``self`` as the client it is part of."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, cast

from client.history import HistoryKey, RoomProfileKey, is_transfer, open_transfer
from client.rooms import LocalRoom
from e2ee import shares
from e2ee.encoding import parse_canonical, unb64u
from e2ee.errors import CryptoError, CryptoErrorCode

if TYPE_CHECKING:
    from client.session import RelaisClient


class ToDeviceMethods:
    async def process_to_device(self) -> None:
        """Fetch and process every queued to-device message, then acknowledge them; then
        back up the keys they brought (a device lost before its next connection leaves
        them in the backup all the same)."""
        client = cast("RelaisClient", self)
        after = 0
        while True:
            answer = await client.api.call("GET", "devices/messages", params={"after": after})
            items = answer["messages"]
            if not items:
                if after:
                    await client.back_up_quietly()
                return
            for item in items:
                await client._on_to_device(item)
            after = items[-1]["id"]
            await client.api.call("POST", "devices/messages/ack", json={"up_to": after})

    async def _on_to_device(self, item: dict[str, Any]) -> None:
        client = cast("RelaisClient", self)
        if item["id"] in client._done_to_device:
            return
        client._done_to_device.add(item["id"])
        body = unb64u(item["body"].rstrip("="), field="body")
        if item["kind"] == "notice":
            await client._on_notice(body)
            return
        if is_transfer(body):
            await client._on_history_transfer(body)
            return
        room: LocalRoom | None = None
        try:
            serial = shares.share_kex_serial(body)
            private = client.device_keys.kex_private(serial)
            if private is None:
                raise CryptoError(CryptoErrorCode.DECRYPT_FAILED, "a key-agreement key we deleted")
            opened = shares.open_share(message=body, kex_private=private, me=client.me)
            room = client._room_of(opened.room)
            if room is None:
                await client.refresh_rooms()
                room = client._room_of(opened.room)
            if room is None or room.left:
                raise CryptoError(CryptoErrorCode.BAD_CHAIN, "share for a room we are not in")
            if opened.epoch > room.state.epoch:
                room = await client.refresh_state(room.room_id)
            session = shares.accept_share(opened, state=room.state)
            if room.add_inbound(session):
                client.history.record(HistoryKey.of(session))
            if opened.profile_key is not None:
                room.add_profile_key(opened.profile_key)
        except CryptoError as error:
            await client._alert(error.code.value, None, f"key share refused: {error}")
            return
        client.save()
        await client._retry_pending(room.room_id)

    def _room_of(self, uid: str) -> LocalRoom | None:
        client = cast("RelaisClient", self)
        return next((r for r in client.rooms.values() if r.state.room == uid), None)

    async def _on_history_transfer(self, body: bytes) -> None:
        """History keys from another device of ours (linking): the sender must be a
        device of our own practitioner certified in the log."""
        client = cast("RelaisClient", self)
        try:
            transfer = None
            for serial in sorted((int(s) for s in client.device_keys.data["kex"]), reverse=True):
                private = client.device_keys.kex_private(serial)
                if private is None:
                    continue
                with contextlib.suppress(CryptoError):
                    transfer = open_transfer(body, kex_private=private, me=client.me)
                    break
            if transfer is None:
                raise CryptoError(CryptoErrorCode.DECRYPT_FAILED, "history keys")
            if transfer.sender[0] != client.national_id:
                raise CryptoError(CryptoErrorCode.NOT_AUTHORISED, "history from someone else")
            mine = await client.directory.identity_of(client.national_id)
            sender = mine.devices.get(transfer.sender[1])
            if mine.identity_key != client.identity.public or sender is None:
                raise CryptoError(CryptoErrorCode.UNKNOWN_DEVICE, "history from an unknown device")
            transfer.verify(sender.keys.sign_key)
        except CryptoError as error:
            await client._alert(error.code.value, None, f"history keys refused: {error}")
            return
        for key in transfer.keys:
            client.history.record(key)
        await client.adopt_profile_keys(transfer.profile_keys, source="history keys")
        client.save()
        for room_id in list(client.rooms):
            await client._retry_pending(room_id)

    def held_profile_keys(self) -> list[RoomProfileKey]:
        """The key of each room's current profile this device holds (for a device it
        links, and for the backup)."""
        client = cast("RelaisClient", self)
        held = []
        for room in client.rooms.values():
            key = None if room.left else room.profile_key()
            if key is not None and room.state.profile is not None:
                held.append(
                    RoomProfileKey(
                        room=room.state.room, version=room.state.profile.version, key=key
                    )
                )
        return held

    async def adopt_profile_keys(
        self, keys: list[RoomProfileKey], *, source: str, quiet: bool = False
    ) -> int:
        """Keep each profile key that the room's verified state names (the room's newest
        ``set_profile`` has its version and key id, and the key opens it); how many were
        kept. A key of an older version than the state's is outdated and dropped; any
        other mismatch is refused with an alert (unless ``quiet``: the backup holds
        every version a device ever had)."""
        client = cast("RelaisClient", self)
        kept = 0
        for key in keys:
            try:
                room = client._room_of(key.room)
                if room is None:
                    await client.refresh_rooms()
                    room = client._room_of(key.room)
                if room is None or room.left:
                    raise CryptoError(
                        CryptoErrorCode.UNKNOWN_KEY, "profile key of a room we are not in"
                    )
                held = room.state.profile
                if held is None or held.version < key.version:
                    room = await client.refresh_state(room.room_id)
                    held = room.state.profile
                if held is not None and key.version < held.version:
                    continue  # outdated: a later version was set since
                key.check(room.state)
            except CryptoError as error:
                if not quiet:
                    await client._alert(error.code.value, None, f"{source} refused: {error}")
                continue
            room.add_profile_key(key.key)
            kept += 1
        if kept:
            client.save()
            async with client._room_events:
                client._room_events.notify_all()  # for wait_for_room
        return kept

    async def _on_notice(self, body: bytes) -> None:
        """Server notices are hints: each only triggers a check of what can be verified."""
        client = cast("RelaisClient", self)
        try:
            notice = parse_canonical(body, max_bytes=4096)
        except CryptoError:
            return
        kind = notice.get("type")
        if kind == "device_revoked" and isinstance(notice.get("national_id"), str):
            await client._on_revocation(notice["national_id"])
        else:
            await client.check_my_devices()

    async def _on_revocation(self, national_id: str) -> None:
        """A device of ``national_id`` may have been revoked: check the log, stop using
        every sender key that device holds, and remove it where this device may."""
        client = cast("RelaisClient", self)
        client.directory.forget(national_id)
        identity = await client.directory.identity_of(national_id)
        for room in client.rooms.values():
            member = room.state.members.get(national_id)
            if room.left or member is None:
                continue
            gone = [d for d in member.devices if d not in identity.devices]
            if not gone:
                continue
            room.outbound = None  # never again shared with, nor encrypting for, that device
            for device in gone:
                if await client.directory.was_revoked(
                    national_id, device, member.devices[device].sign_key
                ):
                    await client._alert(
                        "device_revoked",
                        room.room_id,
                        f"device {device} of {national_id} was revoked: it gets nothing new",
                    )
                    await client._remove_revoked(room, national_id, device)
        client.save()
