"""What the message path needs from storage, whatever the database.

Two implementations: ``postgres.PostgresMessageStore`` (production: async psycopg,
group commit, no thread hop) and ``orm.OrmMessageStore`` (the embedded SQLite default).
Both give the same guarantees, checked by the same tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """An envelope to store. The caller has checked shape and size, not membership."""

    room_id: int
    device_id: int
    practitioner_id: str
    client_id: str
    body: bytes


@dataclass(frozen=True, slots=True)
class StoredEnvelope:
    """An envelope as committed. ``duplicate`` is True when it had been stored before."""

    room_id: int
    seq: int
    device_id: int
    practitioner_id: str
    client_id: str
    body: bytes
    created_at_ms: int
    duplicate: bool = False


class MessageStore(Protocol):
    async def append(self, request: AppendRequest) -> StoredEnvelope:
        """Store one envelope with the room's next sequence number and commit.

        Idempotent on ``(device_id, client_id)``. Membership of ``practitioner_id`` in
        the room is checked in the same transaction. Raises RelaisError(NOT_MEMBER).
        """
        ...

    async def fetch_range(
        self, *, room_id: int, after_seq: int, up_to_seq: int, limit: int
    ) -> list[StoredEnvelope]:
        """Envelopes with ``after_seq < seq <= up_to_seq`` in ascending order."""
        ...

    async def close(self) -> None: ...
