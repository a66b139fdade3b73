"""What a device remembers about a room: the verified chain, its own sender key, the
sender keys it received, the room's profile keys, its senders' order, and envelopes
waiting for a key.

A room is never forgotten on the server's word: the verified chain stays as a
*tombstone* even after this practitioner was removed (``left``), so the server cannot
later show an older or different chain — one where a removed member is back — without
it being refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from client.ordering import SenderOrder
from e2ee.encoding import b64u, unb64u
from e2ee.envelopes import InboundSession, OutboundSession
from e2ee.profile import ProfileKey
from e2ee.ratchet import MessageKey
from e2ee.state import RoomDevice, RoomState, StateEvent, apply_event, replay_chain

SessionKey = tuple[str, int, bytes]


@dataclass
class LocalRoom:
    room_id: int
    events: list[bytes]
    state: RoomState
    outbound: OutboundSession | None = None
    inbound: dict[SessionKey, InboundSession] = field(default_factory=dict)
    last_seq: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)
    compromised: str = ""  # why the room is refused (a forged chain), if it is
    left: bool = False  # this practitioner was removed (verified): the chain is a tombstone
    behind: int = -1  # an epoch other members used that the server has not shown us
    sent_seq: int = 0  # this device's last sequence number in the room
    order: dict[str, Any] = field(default_factory=dict)  # SenderOrder data
    profile_keys: dict[str, str] = field(default_factory=dict)  # key id -> key, base64url

    @property
    def archiver(self) -> RoomDevice | None:
        """The organisation device the verified state names as archiver: not a member,
        but it receives this room's keys, so every member must see it (name it with
        ``KeyDirectory.archiver_of``). None when the room is not archived."""
        return self.state.archiver

    @property
    def archiver_missing(self) -> bool:
        """The room's policy asks for an archiver and none is named."""
        return self.state.archiver_missing

    def apply(self, raw: bytes) -> StateEvent:
        """Verify and apply the next event (raises CryptoError, changing nothing)."""
        self.state, event = apply_event(self.state, raw)
        self.events.append(raw)
        return event

    def add_inbound(self, session: InboundSession) -> bool:
        """Keep a received sender key. A key already held is never replaced: a replayed
        share must not rewind the ratchet (that would reopen used indexes)."""
        key = (*session.sender, session.key_id)
        if key in self.inbound:
            return False
        self.inbound[key] = session
        return True

    @property
    def senders(self) -> SenderOrder:
        return SenderOrder(self.order)

    def profile_key(self) -> ProfileKey | None:
        """The key of the current profile version, if this device received it."""
        profile = self.state.profile
        if profile is None:
            return None
        key = self.profile_keys.get(b64u(profile.key_id))
        return ProfileKey(key_id=profile.key_id, key=unb64u(key)) if key else None

    def add_profile_key(self, key: ProfileKey) -> None:
        self.profile_keys[b64u(key.key_id)] = b64u(key.key)

    def forget_keys(self) -> None:
        """Drop every secret of the room (this practitioner left); keep the chain."""
        self.outbound = None
        self.inbound.clear()
        self.profile_keys.clear()
        self.pending.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "events": [raw.decode("utf-8") for raw in self.events],
            "outbound": _outbound_json(self.outbound) if self.outbound else None,
            "inbound": [_inbound_json(s) for s in self.inbound.values()],
            "last_seq": self.last_seq,
            "pending": self.pending,
            "compromised": self.compromised,
            "left": self.left,
            "behind": self.behind,
            "sent_seq": self.sent_seq,
            "order": self.order,
            "profile_keys": self.profile_keys,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> LocalRoom:
        events = [raw.encode("utf-8") for raw in value["events"]]
        room = cls(room_id=value["room_id"], events=events, state=replay_chain(events))
        room.outbound = (
            _outbound_from(value["outbound"], room.state.room) if value["outbound"] else None
        )
        for item in value["inbound"]:
            room.add_inbound(_inbound_from(item, room.state.room))
        room.last_seq = value["last_seq"]
        room.pending = value["pending"]
        room.compromised = value["compromised"]
        room.left = value["left"]
        room.behind = value["behind"]
        room.sent_seq = value["sent_seq"]
        room.order = value["order"]
        room.profile_keys = value["profile_keys"]
        return room


def _outbound_json(session: OutboundSession) -> dict[str, Any]:
    return {
        "sender": list(session.sender),
        "key_id": b64u(session.key_id),
        "chain_key": b64u(session.chain_key),
        "index": session.index,
        "epoch": session.epoch,
        "created_at_ms": session.created_at_ms,
        "shared_with": sorted([list(ref) for ref in session.shared_with]),
    }


def _outbound_from(value: dict[str, Any], room: str) -> OutboundSession:
    return OutboundSession(
        room=room,
        sender=(value["sender"][0], value["sender"][1]),
        key_id=unb64u(value["key_id"]),
        chain_key=unb64u(value["chain_key"]),
        index=value["index"],
        epoch=value["epoch"],
        created_at_ms=value["created_at_ms"],
        shared_with={(nid, device) for nid, device in value["shared_with"]},
    )


def _inbound_json(session: InboundSession) -> dict[str, Any]:
    return {
        "sender": list(session.sender),
        "key_id": b64u(session.key_id),
        "chain_key": b64u(session.chain_key),
        "next_index": session.next_index,
        "epoch": session.epoch,
        "skipped": {str(i): [b64u(k.key), b64u(k.nonce)] for i, k in session.skipped.items()},
    }


def _inbound_from(value: dict[str, Any], room: str) -> InboundSession:
    return InboundSession(
        room=room,
        sender=(value["sender"][0], value["sender"][1]),
        key_id=unb64u(value["key_id"]),
        chain_key=unb64u(value["chain_key"]),
        next_index=value["next_index"],
        epoch=value["epoch"],
        skipped={
            int(i): MessageKey(key=unb64u(key), nonce=unb64u(nonce))
            for i, (key, nonce) in value["skipped"].items()
        },
    )
