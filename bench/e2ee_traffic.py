"""End-to-end encrypted traffic for the load generator (``--encrypt``).

Each pair room gets a synthetic two-device room state and a sender key, as two SDK
clients would hold after setting up the room: the sender encrypts and signs every
envelope (``e2ee.envelopes``), the receiver verifies and decrypts it before the delivery
counts. The server relays the same opaque bytes either way, so the difference with the
plain run is what encryption costs end to end: bigger envelopes and the clients' work.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from e2ee import kex, state
from e2ee.envelopes import InboundSession, OutboundSession, decrypt_envelope, parse_envelope
from e2ee.identity import IdentityKeyPair
from e2ee.keys import DeviceKeyPair

# About two lines of a nurse's note, like the plain run's 200-byte bodies.
TEXT = "Plaie du talon : 3 cm, fond propre, pansement hydrocolloïde refait ce matin. " * 2


def synthetic_room(
    devices: int,
) -> tuple[state.RoomState, list[DeviceKeyPair], list[state.RoomDevice]]:
    """A verified room state of ``devices`` devices, each of its own practitioner (with
    an identity key vouching for it)."""
    keys = [DeviceKeyPair.generate() for _ in range(devices)]
    identities = [IdentityKeyPair.generate() for _ in range(devices)]
    refs = []
    for index in range(devices):
        national_id = f"8{index:011d}"
        sign_key = keys[index].public.sign_key
        refs.append(
            state.RoomDevice(
                national_id=national_id,
                device=index + 1,
                sign_key=sign_key,
                cross_sig=identities[index].certify(
                    national_id=national_id, device=index + 1, kind="device", sign_key=sign_key
                ),
                identity_key=identities[index].public,
            )
        )
    members = [
        state.member_content(
            ref.national_id, "admin" if index == 0 else "member", ref.identity_key, [ref]
        )
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
    seq: int = 0

    @classmethod
    def create(cls) -> EncryptedPair:
        room_state, keys, refs = synthetic_room(2)
        outbound = OutboundSession.create(
            room=room_state.room, sender=refs[0].ref, epoch=room_state.epoch, now_ms=0
        )
        inbound = receiver_copy(outbound)  # what the receiver holds once the key is shared
        return cls(room_state, keys[0], outbound, {(*inbound.sender, inbound.key_id): inbound})

    def seal(self) -> str:
        """Encrypt and sign the next envelope; its base64url body."""
        self.seq += 1
        envelope = self.outbound.encrypt(
            state=self.room_state,
            key_pair=self.sender_keys,
            content={"type": "text", "text": TEXT},
            seq=self.seq,
            ts=int(time.time() * 1000),
        )
        return base64.urlsafe_b64encode(envelope).rstrip(b"=").decode()

    def open(self, body: str) -> None:
        """Verify and decrypt a received body; raises if anything does not check."""
        envelope = parse_envelope(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        decrypt_envelope(state=self.room_state, envelope=envelope, sessions=self.sessions)


def receiver_copy(outbound: OutboundSession) -> InboundSession:
    """What a receiver holds once the sender key was shared with it."""
    return InboundSession(
        room=outbound.room,
        sender=outbound.sender,
        key_id=outbound.key_id,
        chain_key=outbound.chain_key,
        next_index=outbound.index,
        epoch=outbound.epoch,
    )


def published_document(keys: DeviceKeyPair, device: state.RoomDevice) -> bytes:
    """A device's published key-agreement key (``e2ee.kex``)."""
    return kex.publish(
        key_pair=keys,
        national_id=device.national_id,
        device=device.device,
        kex_private=keys.kex_private,
        serial=1,
        now_ms=int(time.time() * 1000),
    )


def verify_document(raw: bytes, device: state.RoomDevice) -> kex.KexKey:
    """The check a sender makes before sealing a share to that key."""
    return kex.verify_kex(
        raw,
        national_id=device.national_id,
        device=device.device,
        sign_key=device.sign_key,
        now_ms=int(time.time() * 1000),
    )
