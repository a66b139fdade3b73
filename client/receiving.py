"""Receiving envelopes: decrypt, check order and freshness, report what is wrong
(docs/protocol.md §10.6). Methods of ``RelaisClient``, kept here to keep
``client/session.py`` readable; each names ``self`` as the client it is part of."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from client import files
from client.attachments.errors import AttachmentError
from client.events import Message
from client.rooms import LocalRoom
from e2ee.encoding import unb64u
from e2ee.envelopes import decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError, CryptoErrorCode

if TYPE_CHECKING:
    from client.session import RelaisClient

DeviceRef = tuple[str, int]
# A message sent this long after a removal it did not account for is flagged: its
# sender's device was shown an older room state (the removed person may read it).
STALE_GRACE_MS = 120_000


class ReceivingMethods:
    async def _on_envelope(self, item: dict[str, Any], *, retrying: bool = False) -> bool:
        """Decrypt one stored envelope; False if it must wait for a key."""
        client = cast("RelaisClient", self)
        room_id, seq = item["room"], item["seq"]
        room = client.rooms.get(room_id) or await client._load_room(room_id)
        if room is None or room.left:
            return True
        room.last_seq = max(room.last_seq, seq)
        try:
            parsed = parse_envelope(unb64u(item["body"].rstrip("="), field="body"))
            if parsed.epoch > room.state.epoch:
                room = await client.refresh_state(room_id)
                if parsed.epoch > room.state.epoch:
                    await client._withheld(room, parsed.epoch)
            if (*parsed.sender, parsed.key_id) not in room.inbound and not retrying:
                await client.process_to_device()
            client._restore_from_history(room, parsed.sender, parsed.key_id)
            opened = decrypt_envelope(state=room.state, envelope=parsed, sessions=room.inbound)
        except CryptoError as error:
            if error.code in (CryptoErrorCode.UNKNOWN_KEY, CryptoErrorCode.FUTURE_EPOCH):
                if not retrying:
                    room.pending.append(item)
                return False
            await client._alert(error.code.value, room_id, f"message {seq} refused: {error.detail}")
            return True
        if item["sender"] != {"device": opened.sender[1], "practitioner": opened.sender[0]}:
            await client._alert(
                "bad_sender", room_id, f"message {seq}: server and envelope disagree"
            )
            return True
        if parsed.log is not None:
            await client._observe_gossip(parsed.log, room_id)
        stale = await client._check_fresh(room, opened.epoch, opened.ts, seq)
        placement = room.senders.place(opened.sender, opened.seq, client.now_ms())
        if placement.late:
            await client._alert(
                "reordered",
                room_id,
                f"message {seq}: sent by {opened.sender[0]} before a message of theirs "
                "already shown (the server delivered them out of order)",
            )
        if placement.duplicate:
            await client._alert(
                "replay", room_id, f"message {seq}: its sender's number {opened.seq} came twice"
            )
            return True
        try:
            attachment = files.attachment_in(opened.content)
        except AttachmentError as error:
            attachment = None
            await client._alert(error.code, room_id, f"message {seq}: {error.message}")
        await client.messages.put(
            Message(
                room=room_id,
                seq=seq,
                sender=opened.sender,
                content=opened.content,
                own=opened.sender == client.me,
                attachment=attachment,
                sender_seq=opened.seq,
                sent_at=opened.ts,
                late=placement.late,
                stale_state=stale,
            )
        )
        return True

    def _restore_from_history(self, room: LocalRoom, sender: DeviceRef, key_id: bytes) -> None:
        """A sender key this device holds only as a history key (linked or recovered
        device): start an inbound session from it."""
        client = cast("RelaisClient", self)
        if (*sender, key_id) in room.inbound:
            return
        found = client.history.find(room.state.room, sender, key_id)
        if found is not None:
            room.add_inbound(found.session())

    async def _withheld(self, room: LocalRoom, epoch: int) -> None:
        """Another member signed with a room state the server does not show us."""
        client = cast("RelaisClient", self)
        if room.behind < epoch:
            room.behind = epoch
            await client._alert(
                "withheld_state",
                room.room_id,
                f"another member used room state {epoch}, but the server shows only "
                f"{room.state.epoch}: it withholds a change (a removal?); sending is stopped",
            )

    async def _check_fresh(self, room: LocalRoom, epoch: int, sent_at: int, seq: int) -> bool:
        """True (and an alert) when the message was sent from a room state older than a
        removal this device knows, well after that removal: its sender was shown an old
        state, so a removed person may have its key."""
        client = cast("RelaisClient", self)
        removal = room.state.first_removal_after(epoch)
        if removal is None:
            return False
        if sent_at <= room.state.timestamps[removal] + STALE_GRACE_MS:
            return False
        await client._alert(
            "stale_state",
            room.room_id,
            f"message {seq} was sent from an old room state, after someone was removed: "
            "its sender's device was not shown the removal (the removed person may read it)",
        )
        return True

    async def _retry_pending(self, room_id: int) -> None:
        client = cast("RelaisClient", self)
        room = client.rooms.get(room_id)
        if room is None or not room.pending:
            return
        waiting, room.pending = room.pending, []
        for item in sorted(waiting, key=lambda m: m["seq"]):
            if not await client._on_envelope(item, retrying=True):
                room.pending.append(item)
        client.save()

    async def check_gaps(self) -> list[tuple[int, DeviceRef, int]]:
        """Report messages of a sender still missing after the delay (the server dropped
        them): (room, sender, sender's number) each once, as ``missing_message`` alerts."""
        client = cast("RelaisClient", self)
        found: list[tuple[int, DeviceRef, int]] = []
        now = client.now_ms()
        for room_id, room in sorted(client.rooms.items()):
            for sender, number in room.senders.overdue(now):
                found.append((room_id, sender, number))
                await client._alert(
                    "missing_message",
                    room_id,
                    f"message number {number} of {sender[0]} never arrived "
                    "(the server dropped it, or it is still on its way)",
                )
        if found:
            client.save()
        return found
