"""Small builders for protocol tests: devices, a verified room state, sessions."""

from __future__ import annotations

from dataclasses import dataclass

from e2ee import shares, state
from e2ee.envelopes import InboundSession, OutboundSession
from e2ee.keys import DeviceKeyPair
from e2ee.state import RoomDevice, RoomState

NURSE = ("810003456786", 7)
DOCTOR = ("810001987659", 9)
PHARMACIST = ("810002765435", 11)


@dataclass
class Room:
    keys: dict[tuple[str, int], DeviceKeyPair]
    events: list[bytes]
    state: RoomState

    def device(self, ref: tuple[str, int]) -> RoomDevice:
        return state.RoomDevice(national_id=ref[0], device=ref[1], keys=self.keys[ref].public)

    def apply(self, author: tuple[str, int], action: str, content: dict) -> RoomState:
        raw = state.sign_event(
            state=self.state,
            room=self.state.room,
            author=author,
            key_pair=self.keys[author],
            action=action,
            content=content,
            timestamp=1,
        )
        self.state, _ = state.apply_event(self.state, raw)
        self.events.append(raw)
        return self.state


def make_room(kind: str = "care_team", members: tuple = (NURSE, DOCTOR)) -> Room:
    keys = {ref: DeviceKeyPair.generate() for ref in (NURSE, DOCTOR, PHARMACIST)}
    room_id = state.new_room_id()
    content = state.create_content(
        kind=kind,
        members=[
            state.member_content(
                ref[0],
                "admin" if ref == NURSE else "member",
                [state.RoomDevice(national_id=ref[0], device=ref[1], keys=keys[ref].public)],
            )
            for ref in members
        ],
        policy=state.default_policy(kind),
    )
    raw = state.sign_event(
        state=None,
        room=room_id,
        author=NURSE,
        key_pair=keys[NURSE],
        action="create",
        content=content,
        timestamp=1,
    )
    created, _ = state.apply_event(None, raw)
    return Room(keys=keys, events=[raw], state=created)


def session_pair(
    room: Room, sender: tuple[str, int] = NURSE, recipient: tuple[str, int] = DOCTOR
) -> tuple[OutboundSession, dict]:
    """An outbound session of ``sender`` and the recipient's sessions after the share."""
    outbound = OutboundSession.create(
        room=room.state.room, sender=sender, epoch=room.state.epoch, now_ms=0
    )
    message = shares.seal_share(
        session=outbound,
        epoch=room.state.epoch,
        key_pair=room.keys[sender],
        recipient=room.device(recipient),
    )
    opened = shares.open_share(message=message, key_pair=room.keys[recipient], me=recipient)
    inbound: InboundSession = shares.accept_share(opened, state=room.state)
    return outbound, {(*inbound.sender, inbound.key_id): inbound}
