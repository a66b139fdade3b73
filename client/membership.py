"""Creating rooms and changing who is in them: signed room-state events (protocol
§10.5). The methods of ``RelaisClient`` that author events; they live here to keep
``client/session.py`` readable.

Whom a room lists comes from the key-transparency log, never from the server's word
alone: each member with the identity key the log holds for them, each of their devices
with the identity key's signature (``cross_sig``) taken from the log entry. A contact
whose identity key changed since this device first saw it is refused until the user
accepts the change (``Trust``).

An event is signed by this device against the state it verified itself, then offered to
the server; if another event got there first (``stale_state``), the state is fetched and
verified again and the event signed anew.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, cast

from client.api import ApiError
from client.directory import VerifiedIdentity
from client.events import SecurityError
from client.rooms import LocalRoom
from e2ee import profile, state
from e2ee.encoding import JsonObject, b64u

if TYPE_CHECKING:
    from client.session import RelaisClient


def room_devices(identity: VerifiedIdentity) -> list[state.RoomDevice]:
    """The devices of a verified identity as a room state lists them."""
    if identity.identity_key is None:
        return []
    return [
        state.RoomDevice(
            national_id=identity.national_id,
            device=device.device,
            sign_key=device.keys.sign_key,
            cross_sig=device.cross_sig,
            identity_key=identity.identity_key,
        )
        for device in sorted(identity.devices.values(), key=lambda d: d.device)
    ]


class MembershipMethods:
    """Mixed into ``RelaisClient``: the methods need its keys, directory and rooms, so
    each one starts by naming ``self`` as the client it is part of."""

    async def _member(self, national_id: str, role: str) -> JsonObject:
        """A member as the state lists them, from the log, after the trust checks."""
        client = cast("RelaisClient", self)
        identity = await client.directory.identity_of(national_id)
        if identity.identity_key is None:
            raise SecurityError(f"{national_id} has no certified device yet")
        await client.trust.check_identity(national_id, identity.identity_key)
        if not identity.devices:
            raise SecurityError(f"{national_id} has no certified device yet")
        return state.member_content(
            national_id, role, identity.identity_key, room_devices(identity)
        )

    async def create_room(
        self,
        *,
        kind: str,
        members: list[str],
        policy: state.Policy | None = None,
        archiver: str | None = None,
    ) -> int:
        """Create a room with ``members`` (national ids), each with every device the log
        certifies for them; this device signs as the first admin (in a direct room, both
        people are admins). ``archiver``: the identity (``org:<IdNat_Struct>``) of the
        organisation whose archiver the room includes, as its policy asks for care-team
        and téléexpertise rooms."""
        client = cast("RelaisClient", self)
        me = client.own_room_device()
        others = sorted(set(members) - {client.national_id})
        others_role = "admin" if kind == "direct" else "member"
        content_members = [
            state.member_content(client.national_id, "admin", client.identity.public, [me])
        ]
        for national_id in others:
            content_members.append(await self._member(national_id, others_role))
        raw = state.sign_event(
            state=None,
            room=state.new_room_id(),
            author=client.me,
            key_pair=client.key_pair,
            action="create",
            content=state.create_content(
                kind=kind,
                members=content_members,
                policy=policy or state.default_policy(kind),
                archiver=await client.archiver_device(archiver) if archiver else None,
            ),
            timestamp=int(time.time() * 1000),
            log=client.log_gossip(),
        )
        verified, _ = state.apply_event(None, raw)
        local = LocalRoom(room_id=0, events=[raw], state=verified)
        answer = await client.api.call("POST", "rooms", json={"event": raw.decode("utf-8")})
        local.room_id = int(answer["id"])
        # Known before the server's own ``membership`` frame arrives: that frame is only
        # a hint to fetch, and finds the room already verified.
        client.rooms.setdefault(local.room_id, local)
        client.save()
        await client.share_now(local.room_id)
        return local.room_id

    async def add_member(self, room_id: int, national_id: str, *, role: str = "member") -> None:
        content = await self._member(national_id, role)
        await self._change(room_id, "add_member", content)

    async def remove_member(self, room_id: int, national_id: str) -> None:
        await self._change(room_id, "remove_member", {"national_id": national_id})

    async def remove_device(self, room_id: int, national_id: str, device: int) -> None:
        await self._change(room_id, "remove_device", {"national_id": national_id, "device": device})

    async def accept_new_identity(self, room_id: int, national_id: str) -> None:
        """Sign a member's new identity key into the room (they lost every device and
        started again), with their devices under it; the user accepted the change."""
        client = cast("RelaisClient", self)
        identity = await client.directory.identity_of(national_id)
        if identity.identity_key is None:
            raise SecurityError(f"{national_id} has no identity key in the log")
        await client.trust.accept_identity(national_id, identity.identity_key)
        await self._change(
            room_id,
            "set_identity",
            {
                "national_id": national_id,
                "identity_key": b64u(identity.identity_key),
                "devices": [d.entry_json() for d in room_devices(identity)],
            },
        )

    async def set_room_policy(self, room_id: int, policy: state.Policy) -> None:
        """Sign a new policy for the room (admins only)."""
        await self._change(room_id, "set_policy", {"policy": policy.to_json()})

    async def set_archive_to_members(self, room_id: int, enabled: bool) -> None:
        """Ask the room's archiver to send each archive also to every member's personal
        MSSanté addresses (``enabled``), or only to the organisation's mailbox; the
        rest of the policy is kept. Every member's app shows the choice."""
        client = cast("RelaisClient", self)
        room = await client.refresh_state(room_id)
        policy = dataclasses.replace(room.state.policy, archive_to_members=enabled)
        if policy != room.state.policy:
            await self.set_room_policy(room_id, policy)

    async def set_room_profile(self, room_id: int, content: JsonObject) -> int:
        """Set a new version of the room's encrypted profile (admins only); its version.

        A fresh profile key encrypts it; the key goes to the room's devices with this
        device's sender key, so a member removed before this edit never gets it."""
        client = cast("RelaisClient", self)
        room = await client.room_for_sending(room_id)
        version = 1 if room.state.profile is None else room.state.profile.version + 1
        key = profile.ProfileKey.generate()
        ciphertext = profile.encrypt_profile(
            room=room.state.room, version=version, key=key, profile=content
        )
        room.add_profile_key(key)
        room.outbound = None  # a new sender key carries the new profile key to everyone
        client.save()
        await self._change(
            room_id,
            "set_profile",
            {"version": version, "key_id": b64u(key.key_id), "ct": b64u(ciphertext)},
        )
        await client.share_now(room_id)
        return version

    async def join_my_rooms(self) -> list[int]:
        """Add this device to every room of its practitioner that does not list it yet
        (a linked or recovered device, or a new device after logging in again), signing
        the ``add_device`` event itself; the rooms it joined."""
        client = cast("RelaisClient", self)
        await client.refresh_rooms()
        joined: list[int] = []
        me = client.own_room_device()
        for room_id, room in sorted(client.rooms.items()):
            member = room.state.members.get(client.national_id)
            if (
                room.left
                or room.compromised
                or member is None
                or client.device_id in member.devices
            ):
                continue
            if member.identity_key != client.identity.public:
                continue  # an admin must first sign our new identity key in
            await self._change(
                room_id,
                "add_device",
                {"national_id": client.national_id, "device": me.entry_json()},
            )
            joined.append(room_id)
        return joined

    async def _change(self, room_id: int, action: str, content: JsonObject) -> None:
        client = cast("RelaisClient", self)
        for _attempt in range(3):
            room = await client.refresh_state(room_id)
            raw = state.sign_event(
                state=room.state,
                room=room.state.room,
                author=client.me,
                key_pair=client.key_pair,
                action=action,
                content=content,
                timestamp=int(time.time() * 1000),
                log=client.log_gossip(),
            )
            try:
                await client.api.call(
                    "POST", f"rooms/{room_id}/state", json={"event": raw.decode()}
                )
            except ApiError as error:
                if error.code == "stale_state":
                    continue
                raise
            await client.refresh_state(room_id)
            return
        raise ApiError(409, "stale_state", "the room kept changing")
