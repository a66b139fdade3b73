"""What the message path needs from storage, whatever the database.

Two implementations: ``postgres.PostgresMessageStore`` (production: async psycopg,
group commit, no thread hop) and ``orm.OrmMessageStore`` (the embedded SQLite default).
Both give the same guarantees, checked by the same tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chat.errors import ErrorCode, RelaisError


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


class StoreUnavailableError(RelaisError):
    """The database cannot be reached: ``server_busy`` for the client, which retries
    with the same id; the server waits for ``wait_available`` before reading again."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.SERVER_BUSY)


LateCommit = Callable[[StoredEnvelope], None]


class MessageStore(Protocol):
    on_late_commit: LateCommit | None
    """Called with an envelope committed after its sender was answered ``server_busy``
    (the runtime publishes it, so that it reaches the room's devices all the same)."""

    async def append(
        self, request: AppendRequest, *, deadline: float | None = None
    ) -> StoredEnvelope:
        """Store one envelope with the room's next sequence number and commit.

        Idempotent on ``(device_id, client_id)``. Membership of ``practitioner_id`` in
        the room is checked in the same transaction. Raises RelaisError(NOT_MEMBER),
        RelaisError(SERVER_BUSY) when not committed by ``deadline`` (the store's clock,
        ``RELAIS_STORE_TIMEOUT`` from now at the latest), StoreUnavailableError.
        """
        ...

    async def room_heads(self, room_ids: list[int]) -> dict[int, int]:
        """The ``last_seq`` of each existing room among ``room_ids``."""
        ...

    async def wait_available(self, within: float) -> bool:
        """True once the database is usable (at once when it is), False after ``within`` seconds."""
        ...

    async def check(self) -> dict[str, Any]:
        """Health of the store as the message path uses it (for /healthz)."""
        ...

    async def fetch_range(
        self, *, room_id: int, after_seq: int, up_to_seq: int, limit: int
    ) -> list[StoredEnvelope]:
        """Envelopes with ``after_seq < seq <= up_to_seq`` in ascending order."""
        ...

    async def close(self) -> None: ...
