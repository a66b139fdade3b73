"""Creating rooms and changing who is in them: signed room-state events (protocol
§10.5). The methods of ``RelaisClient`` that author events; they live here to keep
``client/session.py`` readable.

An event is signed by this device against the state it verified itself, then offered to
the server; if another event got there first (``stale_state``), the state is fetched and
verified again and the event signed anew.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from client.api import ApiError
from client.events import SecurityError
from client.rooms import LocalRoom
from e2ee import state
from e2ee.encoding import JsonObject

if TYPE_CHECKING:
    from client.session import RelaisClient


class MembershipMethods:
    """Mixed into ``RelaisClient``: the methods need its keys, directory and rooms, so
    each one starts by naming ``self`` as the client it is part of."""

    async def _devices_for(self, national_id: str) -> list[state.RoomDevice]:
        client = cast("RelaisClient", self)
        found = await client.directory.devices_of(national_id)
        if not found:
            raise SecurityError(f"{national_id} has no certified device yet")
        return [
            state.RoomDevice(national_id=national_id, device=d.device, keys=d.keys)
            for d in found.values()
        ]

    async def create_room(
        self,
        *,
        kind: str,
        members: list[str],
        policy: state.Policy | None = None,
        archiver: str | None = None,
    ) -> int:
        """Create a room with ``members`` (national ids), each with every device the log
        certifies for them; this device signs as the first admin. ``archiver``: the
        identity (``org:<IdNat_Struct>``) of the organisation whose archiver the room
        includes, as its policy asks for care-team and téléexpertise rooms."""
        client = cast("RelaisClient", self)
        me = state.RoomDevice(
            national_id=client.national_id, device=client.device_id, keys=client.key_pair.public
        )
        content_members = [state.member_content(client.national_id, "admin", [me])]
        for national_id in sorted(set(members) - {client.national_id}):
            content_members.append(
                state.member_content(national_id, "member", await self._devices_for(national_id))
            )
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
                archiver=await client.directory.archiver_device(archiver) if archiver else None,
            ),
            timestamp=int(time.time() * 1000),
        )
        verified, _ = state.apply_event(None, raw)
        answer = await client.api.call("POST", "rooms", json={"event": raw.decode("utf-8")})
        client.rooms[answer["id"]] = LocalRoom(room_id=answer["id"], events=[raw], state=verified)
        client.save()
        return int(answer["id"])

    async def add_member(self, room_id: int, national_id: str, *, role: str = "member") -> None:
        devices = await self._devices_for(national_id)
        await self._change(room_id, "add_member", state.member_content(national_id, role, devices))

    async def remove_member(self, room_id: int, national_id: str) -> None:
        await self._change(room_id, "remove_member", {"national_id": national_id})

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
