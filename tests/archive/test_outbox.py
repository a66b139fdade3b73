"""The durable outbox: archives sealed at rest before any send, the high-water mark
advanced with the archive's insertion, the same bytes after a crash, backoff, traces
without content, receipts."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archive.cuts import Cut, CutReason, RoomProgress
from archive.outbox import DATABASE, ArchiveState, Backoff, NewArchive, Outbox
from archive.outbox_recipients import RecipientState
from archive.sealing import Sealer, SealError, new_key

START = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
SECRET = b"Plaie du talon gauche, pansement refait"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def open_outbox(
    directory: Path, key: bytes, clock: Clock | None = None, draw: float = 1.0
) -> Outbox:
    return Outbox(
        directory,
        Sealer(key),
        clock=clock or Clock(),
        draw=lambda: draw,
        backoff=Backoff(base=timedelta(seconds=10), cap=timedelta(minutes=2)),
        author="org:1750000123/3",
    )


def archive_of(
    progress: RoomProgress, last: int, mail: bytes = b"Message-ID: <a@x>\r\n\r\n" + SECRET
) -> NewArchive:
    first = (progress.archived_up_to or 0) + 1
    return NewArchive(
        cut=Cut(progress.room_id, first, last, CutReason.ON_DEMAND, START),
        message_id=f"<archive-{progress.room_id}-{first}-{last}@relais.test>",
        attachment_name="IHE_XDM.ZIP",
        recipients=("archives@cds.mssante.fr",),
        mail=mail,
    )


def test_an_archive_is_sealed_at_rest_and_advances_the_room_in_one_go(tmp_path):
    key = new_key()
    outbox = open_outbox(tmp_path, key)
    progress = RoomProgress(room_id=3, kind="care_team").received(1, START).received(2, START)
    outbox.keep_received(progress, [(1, SECRET + b" 1"), (2, SECRET + b" 2")])
    assert [seq for seq, _ in outbox.received(3, 1, 2)] == [1, 2]
    archive_id = outbox.add_archive(progress, archive_of(progress, 2))
    stored = outbox.archive(archive_id)
    assert (stored.state, stored.first_seq, stored.last_seq) == (ArchiveState.PENDING, 1, 2)
    room = outbox.progress(3)
    assert room is not None
    assert room.archived_up_to == 2
    assert outbox.received(3, 1, 2) == []  # the archive holds them now
    assert outbox.mail(archive_id).endswith(SECRET)
    outbox.close()
    # Nothing readable on disk: the database, its WAL and journal.
    for path in tmp_path.iterdir():
        assert b"Plaie" not in path.read_bytes(), path
    assert (tmp_path / DATABASE).stat().st_mode & 0o077 == 0
    # Another key opens nothing.
    other = open_outbox(tmp_path, new_key())
    with pytest.raises(SealError):
        other.mail(archive_id)


def test_a_second_archive_must_follow_the_first(tmp_path):
    outbox = open_outbox(tmp_path, new_key())
    progress = RoomProgress(room_id=3, kind="direct").received(1, START).received(2, START)
    outbox.add_archive(progress, archive_of(progress, 1))
    # The same range again (e.g. a stale view after a crash) is refused, nothing changes.
    with pytest.raises(ValueError, match="archived up to 1"):
        outbox.add_archive(progress, archive_of(progress, 2))
    assert len(outbox.archives(3)) == 1


def test_backoff_grows_with_jitter_and_stops_at_its_cap():
    backoff = Backoff(base=timedelta(seconds=10), cap=timedelta(minutes=2))
    assert [backoff.delay(n, lambda: 1.0).total_seconds() for n in range(1, 7)] == [
        10,
        20,
        40,
        80,
        120,
        120,
    ]
    assert backoff.delay(3, lambda: 0.0).total_seconds() == 20  # half of 40


def test_retries_then_sent_then_integrated_with_traces_and_no_content(tmp_path):
    clock = Clock()
    outbox = open_outbox(tmp_path, new_key(), clock)
    progress = RoomProgress(room_id=3, kind="care_team").received(1, START)
    archive_id = outbox.add_archive(progress, archive_of(progress, 1))
    [due] = outbox.due()
    outbox.attempting(due, "smtp mx.mssante.test:587")
    when = outbox.mark_retry(due, code="connection_refused", error="[Errno 111] Connection refused")
    assert when == START + timedelta(seconds=10)
    assert outbox.due() == []
    clock.now = when
    [due] = outbox.due()
    assert due.attempts == 1
    when = outbox.mark_retry(due, code="421", error="4.7.1 No client certificate presented")
    assert when == START + timedelta(seconds=30)
    assert outbox.archive(archive_id).error_code == "421"
    clock.now = when
    [due] = outbox.due()
    outbox.mark_sent(due, code="250", reply="2.0.0 Ok: queued as 4F3A1")
    sent = outbox.archive(archive_id)
    assert (sent.state, sent.error_code, sent.sent_at) == (ArchiveState.SENT, "", when)
    assert outbox.due() == []
    answered = outbox.mark_receipt(
        message_id=due.message_id, outcome="integrated", code=None, text="", request="imap uid 4"
    )
    assert answered is not None
    assert answered.state is ArchiveState.INTEGRATED
    actions = [t["action"] for t in outbox.traces(archive_id)]
    assert actions == [
        "archive_stored",
        "send",
        "send_deferred",
        "send_deferred",
        "sent",
        "receipt_integrated",
    ]
    assert all(t["author"] == "org:1750000123/3" for t in outbox.traces())
    assert "Plaie" not in repr(outbox.traces())


def test_a_rejection_keeps_its_code_and_a_permanent_refusal_is_kept(tmp_path):
    outbox = open_outbox(tmp_path, new_key())
    progress = RoomProgress(room_id=3, kind="care_team").received(1, START).received(2, START)
    first = outbox.add_archive(progress, archive_of(progress, 1))
    stored = outbox.progress(3)
    assert stored is not None
    second = outbox.add_archive(stored, archive_of(stored, 2))
    outbox.mark_sent(outbox.archive(first), code="250", reply="ok")
    rejected = outbox.mark_receipt(
        message_id=outbox.archive(first).message_id,
        outcome="rejected",
        code=903,
        text="INS absent du CDA",
        request="imap uid 9",
    )
    assert rejected is not None
    assert (rejected.state, rejected.receipt_code, rejected.error_code) == (
        ArchiveState.REJECTED,
        903,
        "903",
    )
    outbox.mark_failed(outbox.archive(second), code="550", error="5.1.1 Recipient address rejected")
    failed = outbox.archive(second)
    assert (failed.state, failed.error_code) == (ArchiveState.FAILED, "550")
    # Who got what: the first archive's recipient accepted it, the second's was refused.
    assert [(r.address, r.state, r.code) for r in outbox.recipients(first)] == [
        ("archives@cds.mssante.fr", RecipientState.ACCEPTED, "")
    ]
    assert [(r.state, r.code) for r in outbox.recipients(second)] == [
        (RecipientState.REFUSED, "550")
    ]
    assert outbox.due() == []
    assert outbox.mail(second)  # kept
    assert outbox.retry_failed(second)
    assert [a.id for a in outbox.due()] == [second]
    outbox.mark_sent(outbox.archive(second), code="250", reply="ok")  # fixed, sent again
    assert [r.state for r in outbox.recipients(second)] == [RecipientState.ACCEPTED]
    assert (
        outbox.mark_receipt(
            message_id="<unknown@x>",
            outcome="integrated",
            code=None,
            text="",
            request="imap uid 10",
        )
        is None
    )


def test_an_operator_cut_request_from_another_process_survives_the_service_writes(tmp_path):
    service = open_outbox(tmp_path, new_key())
    progress = RoomProgress(room_id=3, kind="care_team").received(1, START)
    service.save_progress(progress)
    operator = Outbox(tmp_path, None)
    assert operator.request_cut(3)
    assert not operator.request_cut(99)
    service.save_progress(progress.received(2, START))
    requested = service.progress(3)
    assert requested is not None
    assert requested.cut_requested
    service.add_archive(requested, archive_of(requested, 2))
    done = service.progress(3)
    assert done is not None
    assert not done.cut_requested


CRASH = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from archive.cuts import Cut, CutReason, RoomProgress
    from archive.outbox import NewArchive, Outbox
    from archive.sealing import Sealer
    outbox = Outbox(Path(sys.argv[1]), Sealer(bytes.fromhex(sys.argv[2])))
    now = datetime(2026, 3, 14, tzinfo=UTC)
    progress = RoomProgress(room_id=3, kind="care_team").received(1, now).received(2, now)
    archive = NewArchive(Cut(3, 1, 2, CutReason.IDLE, now), "<x-3-1-2@relais.test>",
                         "IHE_XDM.ZIP", ("a@b.fr",), b"the mail bytes " * 1000)
    archive_id = outbox.add_archive(progress, archive)
    [due] = outbox.due()
    outbox.attempting(due, "smtp")
    print(archive_id, flush=True)
    os._exit(9)  # killed mid-send: no close, no mark
    """
)


def test_after_a_crash_mid_send_the_same_bytes_and_message_id_are_sent_again(tmp_path):
    key = new_key()
    done = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path), key.hex()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 9, done.stderr
    archive_id = int(done.stdout)
    clock = Clock()
    clock.now = datetime.now(UTC)
    outbox = open_outbox(tmp_path, key, clock)
    [due] = outbox.due()
    assert (due.id, due.message_id, due.state) == (
        archive_id,
        "<x-3-1-2@relais.test>",
        ArchiveState.PENDING,
    )
    assert outbox.mail(archive_id) == b"the mail bytes " * 1000
    room = outbox.progress(3)
    assert room is not None
    assert room.archived_up_to == 2
    assert [t["action"] for t in outbox.traces(archive_id)] == ["archive_stored", "send"]
    # The database is a consistent SQLite file for any reader.
    assert sqlite3.connect(tmp_path / DATABASE).execute("PRAGMA integrity_check").fetchone() == (
        "ok",
    )
