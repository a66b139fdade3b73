"""End-to-end encrypted traffic for the load generator (``--encrypt``).

Each pair room gets a synthetic two-device room state and a sender key, as two SDK
clients would hold after setting up the room: the sender encrypts and signs every
envelope (``e2ee.envelopes``), the receiver verifies and decrypts it before the delivery
counts. The server relays the same opaque bytes either way, so the difference with the
plain run is what encryption costs end to end: bigger envelopes and the clients' work.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from client.rooms import own_copy
from e2ee import state
from e2ee.envelopes import InboundSession, OutboundSession, decrypt_envelope, parse_envelope
from e2ee.keys import DeviceKeyPair

# About two lines of a nurse's note, like the plain run's 200-byte bodies.
TEXT = "Plaie du talon : 3 cm, fond propre, pansement hydrocolloïde refait ce matin. " * 2


def synthetic_room(
    devices: int,
) -> tuple[state.RoomState, list[DeviceKeyPair], list[state.RoomDevice]]:
    """A verified room state of ``devices`` devices, each of its own practitioner."""
    keys = [DeviceKeyPair.generate() for _ in range(devices)]
    refs = [
        state.RoomDevice(national_id=f"8{index:011d}", device=index + 1, keys=keys[index].public)
        for index in range(devices)
    ]
    members = [
        state.member_content(ref.national_id, "admin" if index == 0 else "member", [ref])
        for index, ref in enumerate(refs)
    ]
    raw = state.sign_event(
        state=None,
        room=state.new_room_id(),
        author=refs[0].ref,
        key_pair=keys[0],
        action="create",
        content=state.create_content(
            kind="care_team", members=members, policy=state.default_policy("care_team")
        ),
        timestamp=0,
    )
    created, _ = state.apply_event(None, raw)
    return created, keys, refs


@dataclass
class EncryptedPair:
    """The sender's and the receiver's sides of one room's sender key."""

    room_state: state.RoomState
    sender_keys: DeviceKeyPair
    outbound: OutboundSession
    sessions: dict[tuple[str, int, bytes], InboundSession]

    @classmethod
    def create(cls) -> EncryptedPair:
        room_state, keys, refs = synthetic_room(2)
        outbound = OutboundSession.create(
            room=room_state.room, sender=refs[0].ref, epoch=room_state.epoch, now_ms=0
        )
        inbound = own_copy(outbound)  # what the receiver holds once the key is shared
        return cls(room_state, keys[0], outbound, {(*inbound.sender, inbound.key_id): inbound})

    def seal(self) -> str:
        """Encrypt and sign the next envelope; its base64url body."""
        envelope = self.outbound.encrypt(
            state=self.room_state,
            key_pair=self.sender_keys,
            content={"type": "text", "text": TEXT},
        )
        return base64.urlsafe_b64encode(envelope).rstrip(b"=").decode()

    def open(self, body: str) -> None:
        """Verify and decrypt a received body; raises if anything does not check."""
        envelope = parse_envelope(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        decrypt_envelope(state=self.room_state, envelope=envelope, sessions=self.sessions)
