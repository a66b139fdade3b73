"""A decrypted message as the outbox keeps it until it is archived (sealed at rest):
who sent it, when, and its content as decrypted. Téléexpertise events among them tell
when a case reached a final state (docs/protocol.md §12.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from client.events import Message
from client.teleexpertise.contents import Cancel, Close, Decline, is_event, parse_event
from client.teleexpertise.errors import TeleexpertiseError

MAX_RECORD_BYTES = 256 * 1024  # an envelope is at most 48 KiB; its content, less


@dataclass(frozen=True, slots=True)
class ReceivedRecord:
    """``sent_at``: the sender's clock, from inside the encryption (UTC)."""

    seq: int
    national_id: str
    device: int
    sent_at: datetime
    content: dict[str, Any]

    @classmethod
    def of(cls, message: Message) -> ReceivedRecord:
        return cls(
            seq=message.seq,
            national_id=message.sender[0],
            device=message.sender[1],
            sent_at=datetime.fromtimestamp(message.sent_at / 1000, UTC),
            content=dict(message.content),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "seq": self.seq,
                "national_id": self.national_id,
                "device": self.device,
                "sent_at_ms": int(self.sent_at.timestamp() * 1000),
                "content": self.content,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> ReceivedRecord:
        if len(data) > MAX_RECORD_BYTES:
            raise ValueError("a received message record is too large")
        value = json.loads(data)
        if not isinstance(value, dict) or value.get("v") != 1:
            raise ValueError("not a received message record")
        return cls(
            seq=int(value["seq"]),
            national_id=str(value["national_id"]),
            device=int(value["device"]),
            sent_at=datetime.fromtimestamp(int(value["sent_at_ms"]) / 1000, UTC),
            content=dict(value["content"]),
        )


def ends_case(content: dict[str, Any]) -> bool:
    """True for a well-formed téléexpertise event whose step leads to a final state
    (close, decline, cancel; an expiry has no event). Whether the step was allowed is
    the members' devices' check (§12.5): the archive records what was said."""
    if not is_event(content):
        return False
    try:
        event = parse_event(content)
    except TeleexpertiseError:
        return False
    return isinstance(event, Close | Decline | Cancel)
