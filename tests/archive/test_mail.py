"""The MSSanté mail of an archive, read back as a receiver would: headers as the
referential says, a Message-ID that only the archive's name decides, the same bytes on
every build, the zip and the PDF attached, the PDF rendered by poppler."""

from __future__ import annotations

import email
import io
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from email import policy

import pytest

from archive.content import ArchivedFile, ArchivedMessage
from archive.errors import ArchiveError
from archive.mail import build_archive_mail
from archive.policy import TypeCodePolicy
from documents.cda import check_cda
from tests.archive.builders import (
    DOCTOR,
    NURSE,
    START,
    content,
    photo_file,
    report,
    unqualified_patient,
)


def read_back(archive, **options):
    mail = build_archive_mail(archive, **options)
    parsed = email.message_from_bytes(mail.as_bytes(), policy=policy.default)
    return mail, parsed


def attachments(parsed):
    return {part.get_filename(): part.get_content() for part in parsed.iter_attachments()}


def run(*command: str, stdin: bytes) -> bytes:
    return subprocess.run(command, input=stdin, capture_output=True, check=True, timeout=120).stdout


def test_the_headers_of_a_structured_archive():
    mail, parsed = read_back(content())
    assert parsed["From"].addresses[0].addr_spec == "archives@pentes.mssante.fr"
    assert parsed["From"].addresses[0].display_name == "Centre de santé des Pentes"
    assert parsed["To"] == "dpi@chb.mssante.fr"
    assert parsed["Subject"] == (
        "XDM/1.0/DDM+Échanges Relais Mme PAT-TROIS — plaie talon PAT-TROIS DOMINIQUE 28/03/1979"
    )
    assert parsed["Message-ID"] == mail.message_id == "<relais.1750000123.42.1-9@archive.relais>"
    assert parsed["Date"].datetime == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    assert parsed["Disposition-Notification-To"] == "archives@pentes.mssante.fr"
    assert parsed["X-MSS-NIL"] == "NON-REFERENCE"
    assert parsed["X-MSS-CODECDA"] == "11506-3"
    assert parsed["X-MSS-INS"] == "O"
    assert parsed["X-MSS-MES"] is None
    assert mail.attachment_name == "IHE_XDM.zip"
    names = list(attachments(parsed))
    assert names == ["IHE_XDM.zip", "transcription-salon-42-1-9.pdf"]
    zipped = zipfile.ZipFile(io.BytesIO(attachments(parsed)["IHE_XDM.zip"]))
    assert zipped.read("IHE_XDM/SUBSET01/DOC0001.XML") == mail.transcript.cda
    body = parsed.get_body(("plain",)).get_content()
    assert "messages 1 à 9" in body


def test_the_message_id_and_the_bytes_are_stable_across_builds():
    first = build_archive_mail(content())
    second = build_archive_mail(content())
    assert first.message_id == second.message_id
    assert first.as_bytes() == second.as_bytes()
    # Only the organisation, the room and the range decide the Message-ID.
    edited = content(messages=content().messages[:1], reason="daily", room_title="Autre")
    assert build_archive_mail(edited).message_id == first.message_id
    others = {
        build_archive_mail(content(room_id=43)).message_id,
        build_archive_mail(content(first_seq=2)).message_id,
        build_archive_mail(content(last_seq=10)).message_id,
    }
    assert first.message_id not in others
    assert len(others) == 3


def test_now_sets_the_date_and_the_submission_time():
    later = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)
    mail, parsed = read_back(content(), now=later)
    assert parsed["Date"].datetime == later
    assert mail.message_id == build_archive_mail(content()).message_id
    metadata = zipfile.ZipFile(io.BytesIO(mail.xdm_zip)).read("IHE_XDM/SUBSET01/METADATA.XML")
    assert b"<rim:Value>20261203073000</rim:Value>" in metadata
    with pytest.raises(ArchiveError):
        build_archive_mail(content(), now=datetime(2026, 12, 3, 7, 30))


def test_the_pdf_renders_and_shows_the_messages():
    mail, parsed = read_back(content())
    pdf = attachments(parsed)["transcription-salon-42-1-9.pdf"]
    assert pdf == mail.transcript.pdf
    assert check_cda(mail.transcript.cda).pdf == pdf
    png = run("pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", "-", stdin=pdf)
    assert png.startswith(b"\x89PNG")
    text = run("pdftotext", "-layout", "-", "-", stdin=pdf).decode("utf-8")
    assert "Pansement refait, plaie propre." in text
    assert "Vu, je passe jeudi. <b>pas du HTML</b>" in text
    assert "RPPS 10003456786" in text
    assert "RPPS 10001987659" in text
    assert "279035121518989" in text  # qualified: the INS is printed
    assert "IMG_2041.jpg" in text
    assert "PJ000001.JPG" in text
    assert "09:04" in text  # 08:04 UTC is 09:04 in Paris in December
    images = run("pdfimages", "-list", "-", stdin=pdf).decode()
    assert len(images.strip().splitlines()) == 3  # header lines + the one photo


def test_an_archive_cut_because_the_archiver_was_removed_says_so():
    mail, parsed = read_back(content(reason="archiver_removed"))
    assert "archivée pour : archiveur retiré du salon." in parsed.get_body(("plain",)).get_content()
    text = run("pdftotext", "-", "-", stdin=mail.transcript.pdf).decode("utf-8")
    assert "archiveur retiré du salon" in text


def test_without_a_qualified_ins_the_cda_has_none_and_x_mss_ins_says_n():
    mail, parsed = read_back(content(patient=unqualified_patient()))
    assert check_cda(mail.transcript.cda).ins is None
    assert b"279035121518989" not in mail.as_bytes()
    assert parsed["X-MSS-INS"] == "N"  # a CDA is carried, without a qualified INS
    assert parsed["X-MSS-CODECDA"] == "11506-3"


def test_a_teleexpertise_archive_lists_the_report_in_x_mss_codecda():
    archive = content(room_kind="teleexpertise", reports=(report(), report(with_cda=False)))
    _, parsed = read_back(archive)
    assert parsed["X-MSS-CODECDA"] == "11488-4,85208-7"
    names = zipfile.ZipFile(io.BytesIO(attachments(parsed)["IHE_XDM.zip"])).namelist()
    assert "IHE_XDM/SUBSET01/DOC0002.XML" in names
    assert "IHE_XDM/SUBSET01/DOC0003.PDF" in names


def test_a_room_without_a_patient_sends_the_pdf_and_files_without_cda_headers():
    archive = content(patient=None, room_kind="direct")
    mail, parsed = read_back(archive)
    assert mail.xdm_zip is None
    assert mail.transcript.cda is None
    assert parsed["X-MSS-NIL"] == "NON-REFERENCE"
    assert parsed["X-MSS-CODECDA"] is None
    assert parsed["X-MSS-INS"] is None
    assert not parsed["Subject"].startswith("XDM/")
    found = attachments(parsed)
    assert list(found) == ["transcription-salon-42-1-9.pdf", "IMG_2041.jpg", "ordonnance été.pdf"]
    assert found["IMG_2041.jpg"] == archive.files[0].data
    assert mail.attachment_name == "transcription-salon-42-1-9.pdf"


def test_a_kind_configured_without_type_has_no_cda():
    mail, parsed = read_back(content(), type_policy=TypeCodePolicy(by_kind={"care_team": None}))
    assert mail.xdm_zip is None
    assert parsed["X-MSS-CODECDA"] is None


def test_a_patient_mailbox_gets_x_mss_mes_fin_and_the_nil_is_configurable():
    archive = content(recipients=("dpi@chb.mssante.fr", "279035121518989@patient.mssante.fr"))
    _, parsed = read_back(archive, nil="NIL-0042")
    assert parsed["X-MSS-MES"] == "FIN"
    assert parsed["X-MSS-NIL"] == "NIL-0042"
    assert parsed["To"] == "dpi@chb.mssante.fr, 279035121518989@patient.mssante.fr"
    for bad in ("", "é", "a\r\nBcc: x@y.fr", "x" * 65):
        with pytest.raises(ArchiveError):
            build_archive_mail(content(), nil=bad)


def test_non_ascii_file_names_survive_the_mail():
    files = (ArchivedFile("Compte-rendu d\u2019écho 検査.pdf", "application/pdf", b"%PDF-1.4 y"),)
    archive = content(patient=None, messages=(ArchivedMessage(2, START, NURSE, "Voir PJ", files),))
    _, parsed = read_back(archive)
    assert "Compte-rendu d\u2019écho 検査.pdf" in attachments(parsed)


def test_a_long_room_builds_a_whole_archive():
    """1,000 messages and 20 photos: every message in the PDF's text, every photo in the
    zip with its hash (a size check, not a timing one)."""
    messages = []
    for seq in range(1, 1001):
        author = NURSE if seq % 3 else DOCTOR
        files = (photo_file(seq, f"photo-{seq}.jpg"),) if seq % 50 == 0 else ()
        text = f"Message numéro {seq} : évolution de la plaie, pansement refait."
        messages.append(ArchivedMessage(seq, START + timedelta(minutes=seq), author, text, files))
    archive = content(first_seq=1, last_seq=1000, messages=tuple(messages))
    mail = build_archive_mail(archive)
    assert mail.xdm_zip is not None
    zipped = zipfile.ZipFile(io.BytesIO(mail.xdm_zip))
    photos = [n for n in zipped.namelist() if n.endswith(".JPG")]
    assert len(photos) == 20
    assert [zipped.read(n) for n in photos] == [f.data for f in archive.files]
    text = run("pdftotext", "-", "-", stdin=mail.transcript.pdf).decode("utf-8")
    for seq in (1, 500, 1000):
        assert f"Message numéro {seq} :" in text
    assert len(mail.as_bytes()) < 10 * 1024 * 1024
