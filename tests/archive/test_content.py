"""What an archive covers: every value is checked when the archive is made (ranges,
order, UTC times, names, sizes), with a stable code and a message in English and French."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import content as content_module
from archive.content import (
    MAX_MESSAGES,
    ArchivedAuthor,
    ArchivedFile,
    ArchivedMessage,
    ArchivedReport,
    ArchiveOrganisation,
)
from archive.errors import ArchiveError
from tests.archive.builders import DOCTOR, NURSE, START, content, photo, report


def refused(code: str, build) -> ArchiveError:
    with pytest.raises(ArchiveError) as caught:
        build()
    assert caught.value.code == code
    assert caught.value.message
    assert caught.value.message_fr
    return caught.value


def test_a_valid_archive_lists_its_authors_files_and_period():
    archive = content()
    assert archive.authors == (NURSE, DOCTOR)
    assert [f.name for f in archive.files] == ["IMG_2041.jpg", "ordonnance été.pdf"]
    assert archive.period == (START, START + timedelta(minutes=50))


def test_a_file_hash_is_the_sha256_of_its_bytes():
    data = photo(3)
    assert ArchivedFile("a.jpg", "image/jpeg", data).sha256 == hashlib.sha256(data).hexdigest()


def test_the_range_is_ordered_and_positive():
    refused("bad_range", lambda: content(first_seq=10, last_seq=9, messages=()))
    refused("bad_seq", lambda: content(first_seq=0))
    one = content(first_seq=7, last_seq=7, messages=())
    assert one.period == (one.cut_at, one.cut_at)


def test_messages_are_inside_the_range_and_in_order():
    first, second, third = content().messages
    refused("seq_out_of_range", lambda: content(first_seq=4))  # message 3 before the range
    refused("seq_out_of_range", lambda: content(last_seq=7))  # message 8 after it
    refused("seq_out_of_range", lambda: content(messages=(second, first, third)))
    refused("seq_out_of_range", lambda: content(messages=(first, first)))


@settings(max_examples=60, deadline=None)
@given(
    seqs=st.lists(st.integers(min_value=1, max_value=60), max_size=12),
    first=st.integers(min_value=1, max_value=30),
    length=st.integers(min_value=0, max_value=30),
)
def test_an_archive_is_valid_exactly_when_its_messages_increase_inside_the_range(
    seqs, first, length
):
    last = first + length
    messages = tuple(ArchivedMessage(s, START, NURSE, "x") for s in seqs)
    expected = all(first <= s <= last for s in seqs) and all(
        a < b for a, b in itertools.pairwise(seqs)
    )
    if expected:
        assert content(first_seq=first, last_seq=last, messages=messages).messages == messages
    else:
        refused(
            "seq_out_of_range", lambda: content(first_seq=first, last_seq=last, messages=messages)
        )


def test_times_are_aware_and_utc():
    paris = timezone(timedelta(hours=1))
    refused("naive_time", lambda: ArchivedMessage(1, datetime(2026, 12, 2, 9), NURSE, ""))
    refused("naive_time", lambda: ArchivedMessage(1, START.astimezone(paris), NURSE, ""))
    refused("naive_time", lambda: content(cut_at=datetime(2026, 12, 2, 9)))


def test_authors_organisations_and_recipients_are_checked():
    refused("bad_national_id", lambda: ArchivedAuthor("81000 1", "X", "10"))
    refused("bad_profession", lambda: ArchivedAuthor("810001987659", "X", "Médecin"))
    refused("bad_structure_id", lambda: ArchiveOrganisation("Org", "17/50", "a@b.mssante.fr"))
    refused("bad_mailbox", lambda: ArchiveOrganisation("Org", "1750", "pas une adresse"))
    refused("bad_recipients", lambda: content(recipients=()))
    refused("bad_recipients", lambda: content(recipients=("a@b.fr", "A@b.fr")))
    refused("bad_mailbox", lambda: content(recipients=("a@b.fr\r\nBcc: x@y.fr",)))
    refused("bad_room_kind", lambda: content(room_kind="group"))
    refused("bad_reason", lambda: content(reason="weekly"))
    refused("bad_field", lambda: content(room_title=""))
    refused("bad_field", lambda: content(room_title="a\x00b"))


def test_file_names_may_be_any_language_but_not_a_path():
    for name in ("Plaie talon gauche été.jpg", "検査結果.pdf", "x" * 255):
        assert ArchivedFile(name, "image/jpeg", b"").name == name
    refused("bad_field", lambda: ArchivedFile("x" * 256, "image/jpeg", b""))
    refused("bad_file_name", lambda: ArchivedFile("../etc/passwd", "image/jpeg", b""))
    refused("bad_file_name", lambda: ArchivedFile("..", "image/jpeg", b""))
    refused("bad_media_type", lambda: ArchivedFile("a.jpg", "JPEG", b""))


def test_sizes_and_counts_are_capped(monkeypatch):
    monkeypatch.setattr(content_module, "MAX_FILE_BYTES", 10)
    refused("file_too_large", lambda: ArchivedFile("a.bin", "application/octet-stream", b"x" * 11))
    monkeypatch.setattr(content_module, "MAX_ARCHIVE_FILE_BYTES", 1000)
    monkeypatch.setattr(content_module, "MAX_FILE_BYTES", 10**9)
    refused("archive_too_large", content)  # the photo alone is larger than 1,000 bytes
    monkeypatch.setattr(content_module, "MAX_FILES", 1)
    monkeypatch.setattr(content_module, "MAX_ARCHIVE_FILE_BYTES", 10**9)
    refused("too_many_files", content)
    messages = tuple(ArchivedMessage(s, START, NURSE, "") for s in range(1, MAX_MESSAGES + 2))
    refused(
        "too_many_messages",
        lambda: content(first_seq=1, last_seq=MAX_MESSAGES + 1, messages=messages),
    )
    refused("too_many_reports", lambda: content(messages=(), reports=(report(False),) * 11))


def test_a_report_is_a_pdf():
    refused("not_a_pdf", lambda: ArchivedReport(pdf=b"<html>", cda=None, title="CR"))
    assert replace(report(with_cda=False), title="Autre").title == "Autre"


def test_the_rpps_is_read_from_the_idnat_ps():
    assert NURSE.rpps == "10003456786"
    assert NURSE.id_label == "RPPS 10003456786"
    adeli = ArchivedAuthor("0012600631", "X", "60")
    assert adeli.rpps is None
    assert adeli.id_label == "ADELI 012600631"
    assert datetime.now(UTC).tzinfo is UTC
