"""The archiver's durable outbox (docs/archive.md, "Nothing lost, nothing twice").

One SQLite database in the archiver's state directory (the standard library's
``sqlite3``; WAL journal, ``synchronous=FULL`` so every commit is on disk before it
returns), readable by its owner only. It holds:

* ``rooms``: each room's progress (``archive.cuts.RoomProgress``): archived up to which
  sequence number, received up to which;
* ``received``: decrypted messages not archived yet, sealed (``archive.sealing``);
* ``archives``: each archive's mail, built and sealed **before** it is sent, with its
  state: ``pending`` → ``sent`` (only once the SMTP server accepted it) →
  ``integrated`` / ``rejected`` (an MDN read back over IMAP, with its code 900-906), or
  ``failed`` (a permanent refusal: kept and shown to the operator, never dropped);
* ``recipients``: each archive's recipients, which got it and which were refused
  (``archive.outbox_recipients``);
* ``traces``: every action on the mailbox (time, author, action, request, the server's
  answer), never content;
* ``meta``: the IMAP position of the receipts read.

Storing an archive, advancing the room's high-water mark and dropping the messages it
covers happen in one transaction: after a crash either all of it is there or none.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from archive import outbox_recipients
from archive.cuts import Cut, RoomProgress, after_cut
from archive.outbox_recipients import RecipientRow
from archive.sealing import Sealer

DATABASE = "outbox.sqlite3"
MAX_REPLY = 500  # a server's reply kept in a trace is cut to this many characters

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room_id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    archived_up_to INTEGER,
    received_up_to INTEGER,
    last_message_at TEXT,
    final_seq INTEGER,
    last_cut_at TEXT,
    cut_requested INTEGER NOT NULL DEFAULT 0,
    removed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS received (
    room_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (room_id, seq)
);
CREATE TABLE IF NOT EXISTS archives (
    id INTEGER PRIMARY KEY,
    room_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    cut_at TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    attachment_name TEXT NOT NULL,
    recipients TEXT NOT NULL,
    sealed_mail BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    error_code TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    receipt_code INTEGER,
    receipt_text TEXT NOT NULL DEFAULT '',
    sent_at TEXT,
    UNIQUE (room_id, first_seq)
);
CREATE TABLE IF NOT EXISTS traces (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    author TEXT NOT NULL,
    action TEXT NOT NULL,
    archive_id INTEGER,
    request TEXT NOT NULL,
    code TEXT NOT NULL,
    reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ArchiveState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    INTEGRATED = "integrated"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt ``n`` (1, 2…) waits between half and all
    of ``min(cap, base · 2^(n-1))``, so that several archivers do not retry in step."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=15)

    def delay(self, attempts: int, draw: Callable[[], float]) -> timedelta:
        ceiling = min(self.cap, self.base * (2 ** max(attempts - 1, 0)))
        return timedelta(seconds=ceiling.total_seconds() * (0.5 + 0.5 * draw()))


@dataclass(frozen=True, slots=True)
class StoredArchive:
    id: int
    room_id: int
    first_seq: int
    last_seq: int
    reason: str
    message_id: str
    attachment_name: str
    recipients: tuple[str, ...]
    state: ArchiveState
    attempts: int
    next_attempt_at: datetime
    error_code: str
    error: str
    receipt_code: int | None
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewArchive:
    """A built archive ready to be stored: its range and its mail's bytes.
    ``members``: which member each member address belongs to (lower-cased address ->
    national id); ``skipped``: the members who get no copy, with why
    (``archive.recipients``)."""

    cut: Cut
    message_id: str
    attachment_name: str
    recipients: tuple[str, ...]
    mail: bytes
    members: Mapping[str, str] = field(default_factory=dict)
    skipped: tuple[tuple[str, str], ...] = ()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """A time as stored: UTC, always with microseconds, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Outbox:
    """The outbox of one archiver. ``clock`` and ``draw`` (a number in [0, 1)) are
    injected for tests; the default is the wall clock and ``random.random``."""

    def __init__(
        self,
        directory: Path,
        sealer: Sealer | None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        draw: Callable[[], float] = random.random,
        backoff: Backoff | None = None,
        author: str = "",
    ) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / DATABASE
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._db.executescript(outbox_recipients.SCHEMA)
        self._sealer = sealer
        self.clock = clock
        self._draw = draw
        self.backoff = backoff or Backoff()
        self.author = author

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            raise RuntimeError("this outbox was opened without its key (status only)")
        return self._sealer

    # Rooms ----------------------------------------------------------------------

    def progress(self, room_id: int) -> RoomProgress | None:
        row = self._db.execute("SELECT * FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
        return _progress(row) if row else None

    def all_progress(self) -> list[RoomProgress]:
        rows = self._db.execute("SELECT * FROM rooms ORDER BY room_id").fetchall()
        return [_progress(row) for row in rows]

    def save_progress(self, progress: RoomProgress) -> None:
        with self._transaction() as db:
            _write_progress(db, progress)

    def request_cut(self, room_id: int) -> bool:
        """Ask the running service for a cut of the room now; False if unknown."""
        with self._transaction() as db:
            done = db.execute(
                "UPDATE rooms SET cut_requested = 1 WHERE room_id = ?", (room_id,)
            ).rowcount
        return done == 1

    # Received messages ---------------------------------------------------------

    def keep_received(self, progress: RoomProgress, messages: list[tuple[int, bytes]]) -> None:
        """Store decrypted messages (sealed) and the room's progress, in one transaction.
        A message already held (same room and seq) is kept as it was."""
        with self._transaction() as db:
            for seq, plaintext in messages:
                sealed = self.sealer.seal(f"received:{progress.room_id}:{seq}", plaintext)
                db.execute(
                    "INSERT OR IGNORE INTO received (room_id, seq, sealed) VALUES (?, ?, ?)",
                    (progress.room_id, seq, sealed),
                )
            _write_progress(db, progress)

    def received(self, room_id: int, first_seq: int, last_seq: int) -> list[tuple[int, bytes]]:
        rows = self._db.execute(
            "SELECT seq, sealed FROM received WHERE room_id = ? AND seq BETWEEN ? AND ? "
            "ORDER BY seq",
            (room_id, first_seq, last_seq),
        ).fetchall()
        return [
            (row["seq"], self.sealer.open(f"received:{room_id}:{row['seq']}", row["sealed"]))
            for row in rows
        ]

    # Archives ------------------------------------------------------------------

    def add_archive(self, progress: RoomProgress, archive: NewArchive) -> int:
        """Store the archive (sealed), advance the room's high-water mark to its end and
        drop the messages it covers: all in one transaction. ValueError if the archive
        does not start right after the room's last one."""
        cut = archive.cut
        updated = after_cut(progress, cut)
        now = self.clock()
        with self._transaction() as db:
            current = db.execute(
                "SELECT archived_up_to FROM rooms WHERE room_id = ?", (cut.room_id,)
            ).fetchone()
            held = current["archived_up_to"] if current else None
            if held is not None and held != cut.first_seq - 1:
                raise ValueError(f"room {cut.room_id} is archived up to {held}")
            cursor = db.execute(
                "INSERT INTO archives (room_id, first_seq, last_seq, reason, cut_at, "
                "message_id, attachment_name, recipients, sealed_mail, state, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, x'', ?, ?)",
                (
                    cut.room_id,
                    cut.first_seq,
                    cut.last_seq,
                    cut.reason.value,
                    _iso(cut.cut_at),
                    archive.message_id,
                    archive.attachment_name,
                    json.dumps(list(archive.recipients)),
                    ArchiveState.PENDING.value,
                    _iso(now),
                ),
            )
            archive_id = int(cursor.lastrowid or 0)
            sealed = self.sealer.seal(f"archive:{archive_id}", archive.mail)
            db.execute("UPDATE archives SET sealed_mail = ? WHERE id = ?", (sealed, archive_id))
            db.execute(
                "DELETE FROM received WHERE room_id = ? AND seq BETWEEN ? AND ?",
                (cut.room_id, cut.first_seq, cut.last_seq),
            )
            outbox_recipients.insert(
                db, archive_id, archive.recipients, archive.members, archive.skipped
            )
            for national_id, reason in archive.skipped:
                _trace(
                    db,
                    now,
                    self.author,
                    "member_not_sent",
                    archive_id,
                    f"room {cut.room_id} member {national_id}",
                    reason,
                    "",
                )
            _write_progress(db, updated)
            # The cut answers any request for one (the operator's, from another process).
            db.execute("UPDATE rooms SET cut_requested = 0 WHERE room_id = ?", (cut.room_id,))
            _trace(db, now, self.author, "archive_stored", archive_id, archive.message_id, "", "")
        return archive_id

    def archive(self, archive_id: int) -> StoredArchive:
        row = self._db.execute("SELECT * FROM archives WHERE id = ?", (archive_id,)).fetchone()
        if row is None:
            raise KeyError(archive_id)
        return _archive(row)

    def archives(self, room_id: int | None = None) -> list[StoredArchive]:
        if room_id is None:
            rows = self._db.execute("SELECT * FROM archives ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM archives WHERE room_id = ? ORDER BY id", (room_id,)
            ).fetchall()
        return [_archive(row) for row in rows]

    def mail(self, archive_id: int) -> bytes:
        """The archive's mail, exactly the bytes stored before the first send."""
        row = self._db.execute(
            "SELECT sealed_mail FROM archives WHERE id = ?", (archive_id,)
        ).fetchone()
        if row is None:
            raise KeyError(archive_id)
        return self.sealer.open(f"archive:{archive_id}", row["sealed_mail"])

    def due(self) -> list[StoredArchive]:
        """Pending archives whose next attempt is due, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM archives WHERE state = ? AND next_attempt_at <= ? ORDER BY id",
            (ArchiveState.PENDING.value, _iso(self.clock())),
        ).fetchall()
        return [_archive(row) for row in rows]

    def next_attempt_at(self) -> datetime | None:
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) AS at FROM archives WHERE state = ?",
            (ArchiveState.PENDING.value,),
        ).fetchone()
        return _time(row["at"])

    def attempting(self, archive: StoredArchive, request: str) -> None:
        """Trace the start of a send (committed before the first byte goes out)."""
        with self._transaction() as db:
            _trace(db, self.clock(), self.author, "send", archive.id, request, "", "")

    def mark_sent(
        self,
        archive: StoredArchive,
        *,
        code: str,
        reply: str,
        refused: Mapping[str, str] | None = None,
    ) -> None:
        """The SMTP server accepted the mail's data. ``refused``: the recipients it
        refused for good while accepting others (address -> reply); the archive is
        sent all the same, and each refusal is kept and traced."""
        now = self.clock()
        refused = refused or {}
        with self._transaction() as db:
            db.execute(
                "UPDATE archives SET state = ?, attempts = attempts + 1, sent_at = ?, "
                "error_code = '', error = '' WHERE id = ? AND state = ?",
                (ArchiveState.SENT.value, _iso(now), archive.id, ArchiveState.PENDING.value),
            )
            outbox_recipients.mark_sent(db, archive.id, refused)
            _trace(db, now, self.author, "sent", archive.id, archive.message_id, code, reply)
            for address, answer in sorted(refused.items()):
                _trace(
                    db,
                    now,
                    self.author,
                    "recipient_refused",
                    archive.id,
                    f"{archive.message_id} rcpt {address}",
                    answer.split(" ", 1)[0],
                    answer,
                )

    def recipients(self, archive_id: int) -> list[RecipientRow]:
        """The archive's recipients and what became of each; an archive stored before
        recipients were kept has none."""
        return outbox_recipients.of_archive(self._db, archive_id)

    def mark_retry(self, archive: StoredArchive, *, code: str, error: str) -> datetime:
        """A temporary failure: the archive stays pending; the next attempt after a
        backoff. Returns when."""
        now = self.clock()
        attempts = archive.attempts + 1
        at = now + self.backoff.delay(attempts, self._draw)
        with self._transaction() as db:
            db.execute(
                "UPDATE archives SET attempts = ?, next_attempt_at = ?, error_code = ?, "
                "error = ? WHERE id = ? AND state = ?",
                (
                    attempts,
                    _iso(at),
                    code,
                    error[:MAX_REPLY],
                    archive.id,
                    ArchiveState.PENDING.value,
                ),
            )
            _trace(
                db, now, self.author, "send_deferred", archive.id, archive.message_id, code, error
            )
        return at

    def mark_failed(self, archive: StoredArchive, *, code: str, error: str) -> None:
        """A permanent refusal: kept, shown to the operator, never sent again by itself."""
        now = self.clock()
        with self._transaction() as db:
            db.execute(
                "UPDATE archives SET state = ?, attempts = attempts + 1, error_code = ?, "
                "error = ? WHERE id = ?",
                (ArchiveState.FAILED.value, code, error[:MAX_REPLY], archive.id),
            )
            outbox_recipients.mark_failed(db, archive.id, code, error)
            _trace(
                db, now, self.author, "send_refused", archive.id, archive.message_id, code, error
            )

    def retry_failed(self, archive_id: int) -> bool:
        """The operator fixed the cause of a failure: send the archive again."""
        with self._transaction() as db:
            done = db.execute(
                "UPDATE archives SET state = ?, next_attempt_at = ? WHERE id = ? AND state = ?",
                (
                    ArchiveState.PENDING.value,
                    _iso(self.clock()),
                    archive_id,
                    ArchiveState.FAILED.value,
                ),
            ).rowcount
        return done == 1

    def mark_receipt(
        self, *, message_id: str, outcome: str, code: int | None, text: str, request: str
    ) -> StoredArchive | None:
        """Apply a receipt read over IMAP (an MDN or a bounce) to the archive it answers:
        ``integrated``, ``rejected`` (with its 900-906 code) or ``failed``. None if no
        archive has that Message-ID."""
        state = {
            "integrated": ArchiveState.INTEGRATED,
            "rejected": ArchiveState.REJECTED,
            "failed": ArchiveState.FAILED,
        }[outcome]
        now = self.clock()
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM archives WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None:
                _trace(
                    db, now, self.author, "receipt_unmatched", None, request, str(code or ""), ""
                )
                return None
            db.execute(
                "UPDATE archives SET state = ?, receipt_code = ?, receipt_text = ?, "
                "error_code = ?, error = ? WHERE id = ?",
                (
                    state.value,
                    code,
                    text[:MAX_REPLY],
                    str(code) if state is not ArchiveState.INTEGRATED and code else "",
                    text[:MAX_REPLY] if state is not ArchiveState.INTEGRATED else "",
                    row["id"],
                ),
            )
            _trace(
                db,
                now,
                self.author,
                f"receipt_{outcome}",
                row["id"],
                request,
                str(code or ""),
                text,
            )
        return self.archive(int(row["id"]))

    # Traces and meta -----------------------------------------------------------

    def trace(self, action: str, *, request: str = "", code: str = "", reply: str = "") -> None:
        with self._transaction() as db:
            _trace(db, self.clock(), self.author, action, None, request, code, reply)

    def traces(self, archive_id: int | None = None) -> list[dict[str, Any]]:
        if archive_id is None:
            rows = self._db.execute("SELECT * FROM traces ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM traces WHERE archive_id = ? ORDER BY id", (archive_id,)
            ).fetchall()
        return [dict(row) for row in rows]

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _trace(
    db: sqlite3.Connection,
    at: datetime,
    author: str,
    action: str,
    archive_id: int | None,
    request: str,
    code: str,
    reply: str,
) -> None:
    db.execute(
        "INSERT INTO traces (at, author, action, archive_id, request, code, reply) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (_iso(at), author, action, archive_id, request[:MAX_REPLY], code, reply[:MAX_REPLY]),
    )


def _write_progress(db: sqlite3.Connection, progress: RoomProgress) -> None:
    db.execute(
        "INSERT INTO rooms (room_id, kind, archived_up_to, received_up_to, last_message_at, "
        "final_seq, last_cut_at, cut_requested, removed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (room_id) DO UPDATE SET kind = excluded.kind, "
        "archived_up_to = excluded.archived_up_to, received_up_to = excluded.received_up_to, "
        "last_message_at = excluded.last_message_at, final_seq = excluded.final_seq, "
        "last_cut_at = excluded.last_cut_at, removed = excluded.removed",
        (
            progress.room_id,
            progress.kind,
            progress.archived_up_to,
            progress.received_up_to,
            _iso(progress.last_message_at) if progress.last_message_at else None,
            progress.final_seq,
            _iso(progress.last_cut_at) if progress.last_cut_at else None,
            int(progress.cut_requested),
            int(progress.removed),
        ),
    )


def _progress(row: sqlite3.Row) -> RoomProgress:
    return RoomProgress(
        room_id=row["room_id"],
        kind=row["kind"],
        archived_up_to=row["archived_up_to"],
        received_up_to=row["received_up_to"],
        last_message_at=_time(row["last_message_at"]),
        final_seq=row["final_seq"],
        last_cut_at=_time(row["last_cut_at"]),
        cut_requested=bool(row["cut_requested"]),
        removed=bool(row["removed"]),
    )


def _archive(row: sqlite3.Row) -> StoredArchive:
    return StoredArchive(
        id=row["id"],
        room_id=row["room_id"],
        first_seq=row["first_seq"],
        last_seq=row["last_seq"],
        reason=row["reason"],
        message_id=row["message_id"],
        attachment_name=row["attachment_name"],
        recipients=tuple(json.loads(row["recipients"])),
        state=ArchiveState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=datetime.fromisoformat(row["next_attempt_at"]),
        error_code=row["error_code"],
        error=row["error"],
        receipt_code=row["receipt_code"],
        sent_at=_time(row["sent_at"]),
    )
