"""Small builders for protocol tests: identities, devices, a verified room state,
sessions."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from e2ee import kex, shares, state
from e2ee.envelopes import InboundSession, OutboundSession
from e2ee.identity import DeviceKind, IdentityKeyPair
from e2ee.keys import DeviceKeyPair
from e2ee.state import RoomDevice, RoomState

NURSE = ("810003456786", 7)
DOCTOR = ("810001987659", 9)
PHARMACIST = ("810002765435", 11)
NOW_MS = 1_795_392_000_000


@dataclass
class People:
    """Identity keys per practitioner and device keys per device."""

    identities: dict[str, IdentityKeyPair] = field(default_factory=dict)
    keys: dict[tuple[str, int], DeviceKeyPair] = field(default_factory=dict)

    def identity(self, national_id: str) -> IdentityKeyPair:
        if national_id not in self.identities:
            self.identities[national_id] = IdentityKeyPair.generate()
        return self.identities[national_id]

    def device(self, ref: tuple[str, int], kind: DeviceKind = "device") -> RoomDevice:
        """The device as a room state lists it, vouched for by its owner's identity."""
        if ref not in self.keys:
            self.keys[ref] = DeviceKeyPair.generate()
        identity = self.identity(ref[0])
        sign_key = self.keys[ref].public.sign_key
        return RoomDevice(
            national_id=ref[0],
            device=ref[1],
            sign_key=sign_key,
            cross_sig=identity.certify(
                national_id=ref[0], device=ref[1], kind=kind, sign_key=sign_key
            ),
            identity_key=identity.public,
        )

    def member(self, ref: tuple[str, int], role: str) -> dict:
        return state.member_content(ref[0], role, self.identity(ref[0]).public, [self.device(ref)])

    def kex_key(self, ref: tuple[str, int], *, serial: int = 1) -> kex.KexKey:
        """The device's current key-agreement key, published and verified."""
        keys = self.keys[ref]
        raw = kex.publish(
            key_pair=keys,
            national_id=ref[0],
            device=ref[1],
            kex_private=keys.kex_private,
            serial=serial,
            now_ms=NOW_MS,
        )
        return kex.verify_kex(
            raw, national_id=ref[0], device=ref[1], sign_key=keys.public.sign_key, now_ms=NOW_MS
        )

    def kex_private(self, ref: tuple[str, int]) -> X25519PrivateKey:
        return self.keys[ref].kex_private


@dataclass
class Room:
    people: People
    events: list[bytes]
    state: RoomState

    @property
    def keys(self) -> dict[tuple[str, int], DeviceKeyPair]:
        return self.people.keys

    def device(self, ref: tuple[str, int]) -> RoomDevice:
        return self.people.device(ref)

    def sign(self, author: tuple[str, int], action: str, content: dict, *, key_pair=None) -> bytes:
        return state.sign_event(
            state=self.state,
            room=self.state.room,
            author=author,
            key_pair=key_pair or self.keys[author],
            action=action,
            content=content,
            timestamp=NOW_MS,
        )

    def apply(self, author: tuple[str, int], action: str, content: dict) -> RoomState:
        raw = self.sign(author, action, content)
        self.state, _ = state.apply_event(self.state, raw)
        self.events.append(raw)
        return self.state


def make_room(
    kind: str = "care_team", members: tuple = (NURSE, DOCTOR), people: People | None = None
) -> Room:
    people = people or People()
    for ref in (NURSE, DOCTOR, PHARMACIST):
        people.device(ref)
    room_id = state.new_room_id()
    content = state.create_content(
        kind=kind,
        members=[people.member(ref, "admin" if ref == NURSE else "member") for ref in members],
        policy=state.default_policy(kind),
    )
    raw = state.sign_event(
        state=None,
        room=room_id,
        author=NURSE,
        key_pair=people.keys[NURSE],
        action="create",
        content=content,
        timestamp=NOW_MS,
    )
    created, _ = state.apply_event(None, raw)
    return Room(people=people, events=[raw], state=created)


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
        recipient=recipient,
        kex=room.people.kex_key(recipient),
    )
    opened = shares.open_share(
        message=message, kex_private=room.people.kex_private(recipient), me=recipient
    )
    inbound: InboundSession = shares.accept_share(opened, state=room.state)
    return outbound, {(*inbound.sender, inbound.key_id): inbound}
