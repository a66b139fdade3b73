"""The archiver service: the organisation's archiver device, running for good
(docs/archive.md, "The archiver service").

Each turn of its loop:

1. **collect**: fetch over REST what the rooms that name the archiver received since
   last time (``ArchiverClient.sync``), decrypt it, and keep every decrypted message in
   the outbox, sealed, *before* the key store records that it was received (the
   client's ``save`` hands the messages over first): a crash loses nothing;
2. **cut**: the rooms whose archive is due (``archive.cuts``) are packaged (the
   ``Packager``: attachments fetched and decrypted, authors and patient resolved, the
   mail built) and stored in the outbox with the room's high-water mark;
3. **send**: due archives go to the MSSanté operator (the ``Delivery``); a temporary
   failure waits with backoff, a permanent one is kept as ``failed``;
4. **receipts**: every so often, the MDNs and bounces in the archiver's mailbox mark
   archives ``integrated``, ``rejected`` (code 900-906) or ``failed``.

A room that stops naming the archiver is archived up to what was received before (the
SDK forgets its keys at once, so nothing after is read). SIGTERM ends the loop between
two steps; a send under way finishes first (it is bounded by the SMTP timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from archive.cuts import FINAL_STATES, CutPolicy, RoomProgress, due_cut
from archive.outbox import Outbox
from archive.ports import Delivery, MailError, Packager, PackagingError
from archive.records import ReceivedRecord, ends_case
from archive.status import room_statuses
from client.api import ApiError
from client.archiver import ArchiverClient

Output = Callable[[str], None]
UID_KEY, UIDVALIDITY_KEY = "imap_last_uid", "imap_uidvalidity"
MAX_RECEIPT_BATCHES = 50  # per turn; the rest on the next turn
_CODE = re.compile(r"[a-z0-9_]{0,40}")  # what the server takes as an error code


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ArchivingClient(ArchiverClient):
    """An ``ArchiverClient`` whose every save of the key store first hands the messages
    it decrypted to ``before_save`` (the outbox): the key store never says a message was
    received before the outbox holds it."""

    before_save: Callable[[], None] | None = None

    def save(self) -> None:
        if self.before_save is not None:
            self.before_save()
        super().save()


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """``sender``: the organisation's MSSanté mailbox; ``recipients``: where archives
    go (default: the sender); ``catch_up_report``: show progress when more messages
    than this wait on the server; ``retry_base``: the first wait after a failed send
    (doubling up to 15 minutes)."""

    sender: str
    recipients: tuple[str, ...] = ()
    policy: CutPolicy = field(default_factory=CutPolicy)
    sync_every: timedelta = timedelta(seconds=10)
    receipts_every: timedelta = timedelta(seconds=60)
    catch_up_report: int = 500
    retry_connection: timedelta = timedelta(seconds=5)
    retry_base: timedelta = timedelta(seconds=5)


@dataclass
class CatchUp:
    """Progress of a long catch-up: messages waiting on the server, and kept so far."""

    waiting: int = 0
    kept: int = 0
    shown_at: int = 0


class ArchiveService:
    def __init__(
        self,
        *,
        client: ArchivingClient,
        outbox: Outbox,
        packager: Packager,
        delivery: Delivery,
        settings: ServiceSettings,
        out: Output,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.packager = packager
        self.delivery = delivery
        self.settings = settings
        self.out = out
        self.clock = clock
        self.catch_up: CatchUp | None = None
        self._receipts_at: datetime | None = None
        self._reported: list[dict[str, Any]] | None = None
        client.before_save = self.keep_received

    # 1. Collect ---------------------------------------------------------------------

    def keep_received(self) -> None:
        """Move every decrypted message from the client's queue into the outbox."""
        by_room: dict[int, list[ReceivedRecord]] = {}
        while not self.client.messages.empty():
            message = self.client.messages.get_nowait()
            by_room.setdefault(message.room, []).append(ReceivedRecord.of(message))
        now = self.clock()
        for room_id, records in sorted(by_room.items()):
            progress = self.outbox.progress(room_id) or RoomProgress(
                room_id=room_id, kind=self._kind(room_id)
            )
            kept: list[tuple[int, bytes]] = []
            for record in sorted(records, key=lambda r: r.seq):
                before = progress.received_up_to
                progress = progress.received(record.seq, min(record.sent_at, now))
                if progress.received_up_to == before:
                    continue  # already held (seen again after a crash), or after a removal
                kept.append((record.seq, record.to_bytes()))
                if ends_case(record.content):
                    progress = progress.case_ended(record.seq)
            self.outbox.keep_received(progress, kept)
            self._show_catch_up(len(kept), room_id, progress.received_up_to)

    def _kind(self, room_id: int) -> str:
        room = self.client.rooms.get(room_id)
        return room.state.kind if room is not None else "care_team"

    def _show_catch_up(self, count: int, room_id: int, seq: int | None) -> None:
        progress = self.catch_up
        if progress is None or count == 0:
            return
        progress.kept += count
        step = max(self.settings.catch_up_report // 2, 1)
        if progress.kept - progress.shown_at >= step or progress.kept >= progress.waiting:
            progress.shown_at = progress.kept
            shown = min(progress.kept, progress.waiting)
            self.out(
                f"rattrapage / catching up: {shown}/{progress.waiting} messages "
                f"(salon / room {room_id} at seq {seq})"
            )

    async def collect(self) -> None:
        """Fetch and keep everything the server holds for the archived rooms."""
        waiting = await self._waiting_on_server()
        if waiting > self.settings.catch_up_report:
            self.catch_up = CatchUp(waiting=waiting)
            self.out(f"rattrapage de {waiting} messages / catching up on {waiting} messages")
        try:
            await self.client.sync()
            self.keep_received()
        finally:
            if self.catch_up is not None:
                self.out("rattrapage terminé / caught up")
            self.catch_up = None
        self._note_removals()

    async def _waiting_on_server(self) -> int:
        listing: dict[str, Any] = await self.client.api.call("GET", "rooms")
        waiting = 0
        for item in listing["rooms"]:
            room = self.client.rooms.get(int(item["id"]))
            held = room.last_seq if room is not None else 0
            waiting += max(int(item.get("last_seq") or 0) - held, 0)
        return waiting

    def _note_removals(self) -> None:
        for progress in self.outbox.all_progress():
            room = self.client.rooms.get(progress.room_id)
            gone = room is None or room.left
            if gone and not progress.removed:
                self.outbox.save_progress(RoomProgress(**{**_fields(progress), "removed": True}))
                self.out(
                    f"salon {progress.room_id} : l'archiveur n'y est plus nommé / room "
                    f"{progress.room_id} no longer names the archiver: nothing after is archived"
                )

    async def check_expiries(self) -> None:
        """A téléexpertise that expired has no event: ask the server for its state."""
        for progress in self.outbox.all_progress():
            if progress.kind != "teleexpertise" or progress.removed:
                continue
            if progress.final_seq is not None or not progress.unarchived:
                continue
            try:
                case = await self.client.api.call("GET", f"teleexpertise/{progress.room_id}")
            except ApiError:
                continue
            if case.get("state") in FINAL_STATES:
                self.outbox.save_progress(progress.case_ended(None))

    # 2. Cut -------------------------------------------------------------------------

    async def cut_rooms(self) -> int:
        """Package and store every archive due; how many were stored."""
        stored = 0
        for progress in self.outbox.all_progress():
            current: RoomProgress | None = progress
            while current is not None:
                cut = due_cut(current, now=self.clock(), policy=self.settings.policy)
                if cut is None:
                    break
                records = [
                    ReceivedRecord.from_bytes(data)
                    for _, data in self.outbox.received(cut.room_id, cut.first_seq, cut.last_seq)
                ]
                try:
                    archive = await self.packager.package(cut, records)
                except PackagingError as error:
                    self._packaging_failed(cut.room_id, error.code, error.message_en)
                    break
                archive_id = self.outbox.add_archive(current, archive)
                self.outbox.set_meta(f"package_error:{cut.room_id}", "")
                stored += 1
                self.out(
                    f"archive {archive_id} : salon {cut.room_id}, seq {cut.first_seq}-"
                    f"{cut.last_seq} ({cut.reason.value}) / room {cut.room_id} archived"
                )
                current = self.outbox.progress(cut.room_id)
        return stored

    def _packaging_failed(self, room_id: int, code: str, message: str) -> None:
        self.outbox.trace("package_failed", request=f"room {room_id}", code=code, reply=message)
        self.outbox.set_meta(f"package_error:{room_id}", f"{code}: {message}")
        self.out(f"!! salon {room_id} : archive non construite / archive not built: {code}")

    # 3. Send ------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Send every due archive; how many the server accepted. A temporary failure
        stops the round (the server is down for the others too)."""
        accepted = 0
        for archive in self.outbox.due():
            mail = self.outbox.mail(archive.id)
            recipients = archive.recipients or (self.settings.sender,)
            self.outbox.attempting(archive, self.delivery.describe())
            try:
                answer = await asyncio.to_thread(
                    self.delivery.send, mail, sender=self.settings.sender, recipients=recipients
                )
            except MailError as failure:
                if failure.permanent:
                    self.outbox.mark_failed(archive, code=failure.code, error=failure.reply)
                    self.out(
                        f"!! archive {archive.id} refusée / refused ({failure.code}): "
                        f"{failure.message_fr} / {failure.message_en}"
                    )
                    continue
                at = self.outbox.mark_retry(archive, code=failure.code, error=failure.reply)
                self.out(
                    f"!! archive {archive.id} non envoyée / not sent ({failure.code}): "
                    f"{failure.message_fr} / {failure.message_en} — "
                    f"nouvel essai / retry at {at.isoformat(timespec='seconds')}"
                )
                break
            self.outbox.mark_sent(
                archive, code=answer.code, reply=answer.reply, refused=answer.refused
            )
            accepted += 1
            self.out(f"archive {archive.id} envoyée / sent ({answer.code})")
            if answer.refused:
                # Addresses name people: the log gives the count, the status the rest.
                count = len(answer.refused)
                self.out(
                    f"!! archive {archive.id} : {count} destinataire(s) refusé(s) / "
                    f"{count} recipient(s) refused (archive status)"
                )
        return accepted

    # 4. Receipts --------------------------------------------------------------------

    async def read_receipts(self) -> int:
        """Apply the receipts that arrived since the last read; how many matched."""
        matched = 0
        for _ in range(MAX_RECEIPT_BATCHES):
            after = int(self.outbox.get_meta(UID_KEY) or 0)
            batch = await asyncio.to_thread(self.delivery.receipts, after_uid=after)
            known = self.outbox.get_meta(UIDVALIDITY_KEY)
            if known is not None and int(known) != batch.uidvalidity and after:
                # The mailbox was renumbered: read it again from the start (a receipt
                # applied twice changes nothing).
                self.outbox.set_meta(UID_KEY, "0")
                self.outbox.set_meta(UIDVALIDITY_KEY, str(batch.uidvalidity))
                continue
            for receipt in batch.receipts:
                archive = self.outbox.mark_receipt(
                    message_id=receipt.original_message_id,
                    outcome=receipt.outcome,
                    code=receipt.code,
                    text=receipt.text,
                    request=f"imap uid {receipt.uid}",
                )
                if archive is not None:
                    matched += 1
                    code = f" {receipt.code}" if receipt.code else ""
                    self.out(f"archive {archive.id} : {receipt.outcome}{code}")
            self.outbox.set_meta(UIDVALIDITY_KEY, str(batch.uidvalidity))
            self.outbox.set_meta(UID_KEY, str(max(batch.last_uid, after)))
            if not batch.more:
                break
        return matched

    # The loop -----------------------------------------------------------------------

    async def turn(self) -> None:
        """One turn: collect, cut, send, and read receipts when it is time."""
        await self.collect()
        await self.check_expiries()
        await self.cut_rooms()
        await self.send_due()
        now = self.clock()
        if self._receipts_at is None or now >= self._receipts_at:
            self._receipts_at = now + self.settings.receipts_every
            try:
                await self.read_receipts()
            except MailError as failure:
                self.out(f"!! boîte aux lettres / mailbox ({failure.code}): {failure.message_en}")
        await self.report_status()

    async def report_status(self) -> None:
        """Tell the Relais server, for its operator, where each room stands: numbers and
        error codes only (``POST archiver/status``), when they changed."""
        rooms = [
            {
                "room": status.room,
                "archived_up_to": status.archived_up_to,
                "received_up_to": status.received_up_to,
                "pending": status.pending,
                "sent": status.sent,
                "integrated": status.integrated,
                "rejected": status.rejected,
                "failed": status.failed,
                "last_error_code": status.last_error_code,
                **_recipient_counts(status.recipients),
            }
            for status in room_statuses(self.outbox)
            if not status.removed
            and _CODE.fullmatch(status.last_error_code)
            and status.room in self.client.rooms
            and not self.client.rooms[status.room].left
        ]
        if rooms == self._reported:
            return
        try:
            await self.client.api.call("POST", "archiver/status", json={"rooms": rooms[:500]})
        except ApiError as error:
            self.out(f"!! état non transmis / status not reported: {error.code}")
            return
        self._reported = rooms

    def _pause(self) -> float:
        pause = self.settings.sync_every
        next_attempt = self.outbox.next_attempt_at()
        if next_attempt is not None:
            pause = min(pause, max(next_attempt - self.clock(), timedelta(0)))
        return max(pause.total_seconds(), 0.05)

    async def run(self, stop: asyncio.Event) -> None:
        """Turn until ``stop`` is set. A failure of one turn (the Relais server down, a
        network error) is one line, and the next turn tries again."""
        while not stop.is_set():
            try:
                if not self.client.connected:
                    await self.client.disconnect()
                    await self.client.connect()
                    self.keep_received()
                await self.turn()
                pause = self._pause()
            except (ApiError, OSError, ConnectionError, TimeoutError) as error:
                self.out(f"!! serveur Relais / Relais server: {_one_line(error)}")
                pause = self.settings.retry_connection.total_seconds()
            except Exception as error:
                if not _transport_error(error):
                    raise
                self.out(f"!! serveur Relais / Relais server: {_one_line(error)}")
                pause = self.settings.retry_connection.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)


def _recipient_counts(recipients: list[dict[str, str]]) -> dict[str, int]:
    """The last archive's recipients as numbers: the server sees no address."""
    states = [r["state"] for r in recipients]
    return {
        "recipients_accepted": states.count("accepted"),
        "recipients_refused": states.count("refused"),
        "members_not_sent": states.count("not_sent"),
    }


def _transport_error(error: Exception) -> bool:
    """The HTTP and WebSocket libraries' own errors (a server down or restarting)."""
    module = type(error).__module__
    return module.startswith(("httpx", "httpcore", "websockets"))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _fields(progress: RoomProgress) -> dict[str, Any]:
    return {name: getattr(progress, name) for name in RoomProgress.__slots__}
