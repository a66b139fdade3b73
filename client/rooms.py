"""What a device remembers about a room: the verified chain, its own sender key, the
sender keys it received, and envelopes waiting for a key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from e2ee.encoding import b64u, unb64u
from e2ee.envelopes import InboundSession, OutboundSession
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

    def to_json(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "events": [raw.decode("utf-8") for raw in self.events],
            "outbound": _outbound_json(self.outbound) if self.outbound else None,
            "inbound": [_inbound_json(s) for s in self.inbound.values()],
            "last_seq": self.last_seq,
            "pending": self.pending,
            "compromised": self.compromised,
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


def own_copy(session: OutboundSession) -> InboundSession:
    """An inbound twin of our own sender key, to read our own messages after a sync."""
    return InboundSession(
        room=session.room,
        sender=session.sender,
        key_id=session.key_id,
        chain_key=session.chain_key,
        next_index=session.index,
        epoch=session.epoch,
    )
