"""A push job: "envelope ``seq`` of ``room`` was committed, sent by ``sender_device``".

That is all the worker needs to decide who gets a push; it never sees the envelope.
Jobs travel through a Redis stream (``feed.StreamFeed``) or, without Redis, an
in-process queue (``feed.LocalFeed``).
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM_GROUP = "push-workers"


def stream_key(prefix: str) -> str:
    """The Redis stream of push jobs for a deployment (``RELAIS_REDIS_PREFIX``)."""
    return f"{prefix}:push:jobs"


@dataclass(frozen=True, slots=True)
class PushJob:
    room_id: int
    seq: int
    sender_device_id: int
    created_ms: int = 0  # when the job was queued (Unix ms), 0 when unknown

    def to_fields(self) -> dict[str, int]:
        return {"r": self.room_id, "s": self.seq, "d": self.sender_device_id}

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[bytes, bytes]) -> PushJob:
        """A job from a stream entry (its id starts with the Unix ms it was added at).

        Raises ValueError or KeyError on a malformed entry.
        """
        return cls(
            room_id=int(fields[b"r"]),
            seq=int(fields[b"s"]),
            sender_device_id=int(fields[b"d"]),
            created_ms=int(entry_id.split("-", 1)[0]),
        )
