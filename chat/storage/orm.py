"""Envelope store through the Django ORM: the embedded default (SQLite) and a fallback.

Each append is one short transaction in Django's database thread: lock the room row,
check membership, return the original on a retried key, otherwise insert with
``last_seq + 1``. Simple and correct; the PostgreSQL store is the fast path.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import F

from chat.clock import Clock
from chat.errors import ErrorCode, RelaisError
from chat.models import Envelope, Membership, Room
from chat.outages import UNAVAILABLE
from chat.storage.base import AppendRequest, LateCommit, StoredEnvelope, StoreUnavailableError


def _stored(envelope: Envelope, *, duplicate: bool) -> StoredEnvelope:
    return StoredEnvelope(
        room_id=envelope.room_id,
        seq=envelope.seq,
        device_id=envelope.sender_device_id,
        practitioner_id=envelope.sender_practitioner_id,
        client_id=envelope.client_id,
        body=bytes(envelope.body),
        created_at_ms=envelope.created_at_ms,
        duplicate=duplicate,
    )


class OrmMessageStore:
    def __init__(self, *, clock: Clock, timeout_seconds: float = 10) -> None:
        self._clock = clock
        self._timeout = timeout_seconds
        self.on_late_commit: LateCommit | None = None

    async def append(
        self, request: AppendRequest, *, deadline: float | None = None
    ) -> StoredEnvelope:
        now = self._clock.monotonic()
        timeout = self._timeout if deadline is None else min(self._timeout, deadline - now)
        if timeout <= 0:
            raise RelaisError(ErrorCode.SERVER_BUSY)
        try:
            async with asyncio.timeout(timeout):
                stored: StoredEnvelope = await database_sync_to_async(self._append)(request)
        except TimeoutError:
            raise RelaisError(ErrorCode.SERVER_BUSY) from None
        except UNAVAILABLE:
            raise StoreUnavailableError() from None
        return stored

    def _append(self, request: AppendRequest) -> StoredEnvelope:
        for _attempt in range(2):
            try:
                return self._append_once(request)
            except IntegrityError:
                # A concurrent retry stored the same key first: answer with it.
                continue
        raise RelaisError(ErrorCode.SERVER_BUSY)

    def _append_once(self, request: AppendRequest) -> StoredEnvelope:
        with transaction.atomic():
            existing = Envelope.objects.filter(
                sender_device_id=request.device_id, client_id=request.client_id
            ).first()
            if existing is not None:
                return _stored(existing, duplicate=True)
            is_member = (
                Membership.objects.select_for_update()
                .filter(room_id=request.room_id, practitioner_id=request.practitioner_id)
                .exists()
            )
            if not is_member:
                raise RelaisError(ErrorCode.NOT_MEMBER)
            Room.objects.select_for_update().filter(pk=request.room_id).update(
                last_seq=F("last_seq") + 1
            )
            seq = Room.objects.values_list("last_seq", flat=True).get(pk=request.room_id)
            envelope = Envelope.objects.create(
                room_id=request.room_id,
                seq=seq,
                sender_device_id=request.device_id,
                sender_practitioner_id=request.practitioner_id,
                client_id=request.client_id,
                body=request.body,
                size=len(request.body),
                created_at_ms=self._clock.now_ms(),
            )
        return _stored(envelope, duplicate=False)

    async def fetch_range(
        self, *, room_id: int, after_seq: int, up_to_seq: int, limit: int
    ) -> list[StoredEnvelope]:
        try:
            envelopes: list[StoredEnvelope] = await database_sync_to_async(self._fetch_range)(
                room_id=room_id, after_seq=after_seq, up_to_seq=up_to_seq, limit=limit
            )
        except UNAVAILABLE:
            raise StoreUnavailableError() from None
        return envelopes

    async def room_heads(self, room_ids: list[int]) -> dict[int, int]:
        try:
            heads: dict[int, int] = await database_sync_to_async(self._room_heads)(room_ids)
        except UNAVAILABLE:
            raise StoreUnavailableError() from None
        return heads

    def _room_heads(self, room_ids: list[int]) -> dict[int, int]:
        return dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "last_seq"))

    async def wait_available(self, within: float) -> bool:
        """The ORM reconnects on each use: nothing to wait for here."""
        return True

    async def check(self) -> dict[str, Any]:
        await self.room_heads([0])
        return {"status": "ok"}

    def _fetch_range(
        self, *, room_id: int, after_seq: int, up_to_seq: int, limit: int
    ) -> list[StoredEnvelope]:
        envelopes = Envelope.objects.filter(
            room_id=room_id, seq__gt=after_seq, seq__lte=up_to_seq
        ).order_by("seq")[:limit]
        return [_stored(envelope, duplicate=False) for envelope in envelopes]

    async def close(self) -> None:
        return None
