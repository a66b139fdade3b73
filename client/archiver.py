"""The SDK for an organisation's archiver device, and how members' apps show it.

``ArchiverClient`` is a ``RelaisClient`` that only reads. It registers with the token
file ``manage.py create_archiver`` wrote: its first registration makes the
organisation's identity key (kind ``organisation`` in the log) and certifies the device
with kind ``archiver``; it reads the rooms whose verified state names it: it receives their
sender keys like a member device, and fetches their envelopes over REST (it has no
membership, so the WebSocket ``sync`` does not serve it). It never sends, creates or
changes a room: the server would refuse, and members' clients refuse anything signed
by an archiver. What it does with the messages (the archive itself) comes later.

    store = KeyStore.open(path, passphrase)
    archiver = ArchiverClient(server="https://relais.example", store=store)
    await archiver.register_from_file(Path("/etc/relais/archiver.json"))  # once
    await archiver.connect()  # rooms, key shares, then every envelope since last time
    message = await archiver.messages.get()
    await archiver.sync()  # later: what arrived since
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from client.api import ApiError
from client.directory import KeyTransparencyError
from client.events import SecurityError
from client.session import RelaisClient
from e2ee import state
from e2ee.encoding import JsonObject

HISTORY_PAGE = 200


class ArchiverClient(RelaisClient):
    @property
    def device_kind(self) -> Any:
        return "archiver"

    async def register_from_file(self, path: Path) -> None:
        """Certify fresh keys with the token file of ``manage.py create_archiver``
        (``{"v": 1, "national_id", "device", "token"}``)."""
        if self.registered:
            return
        try:
            data = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read the archiver token file: {error}") from None
        if not (
            isinstance(data, dict)
            and data.get("v") == 1
            and isinstance(data.get("national_id"), str)
            and str(data["national_id"]).startswith("org:")
            and isinstance(data.get("device"), int)
            and isinstance(data.get("token"), str)
        ):
            raise ValueError("not an archiver token file (manage.py create_archiver writes one)")
        await self.register_with_token(
            token=data["token"], device=data["device"], national_id=data["national_id"]
        )

    async def sync(self) -> None:
        """Fetch every envelope since the last one held, for each archived room (new
        rooms first), decrypting as it goes. A room that no longer names this
        organisation's archiver is forgotten, keys included."""
        await self.refresh_rooms()
        for room_id in sorted(self.rooms):
            await self._catch_up(room_id)
        self.save()

    async def _catch_up(self, room_id: int) -> None:
        while True:
            room = self.rooms.get(room_id)
            if room is None or room.left:
                return
            try:
                page: dict[str, Any] = await self.api.call(
                    "GET",
                    f"rooms/{room_id}/messages",
                    params={"after": room.last_seq, "limit": HISTORY_PAGE},
                )
            except ApiError as error:
                if error.code != "not_member":
                    raise
                room.left = True  # an admin removed the archiver: keep only the chain
                room.forget_keys()
                return
            items = page["messages"]
            if not items:
                return
            for item in items:
                await self._on_envelope(item)
            self.save()

    async def send(
        self, room_id: int, content: JsonObject, *, message_id: str | None = None
    ) -> int:
        raise SecurityError("an archiver never sends")

    async def create_room(
        self,
        *,
        kind: str,
        members: list[str],
        policy: state.Policy | None = None,
        archiver: str | None = None,
    ) -> int:
        raise SecurityError("an archiver never creates rooms")

    async def _change(self, room_id: int, action: str, content: JsonObject) -> None:
        raise SecurityError("an archiver never changes a room")


async def archiver_notice(client: RelaisClient, room_id: int) -> str | None:
    """The line to show a member about the room's archiver: who archives the room (the
    device proven in the log as an organisation's archiver), or a warning when the
    device the room names is not one (no key goes to it). None if not archived."""
    archiver = client.rooms[room_id].archiver
    if archiver is None:
        return None
    try:
        organisation = await client.directory.archiver_of(archiver)
    except KeyTransparencyError as error:
        return f"!! security: the room's archiver is refused: {error}"
    return (
        f"archived by {organisation.name} (structure {organisation.structure_id}): "
        "this organisation's archiver receives the room's messages"
    )
