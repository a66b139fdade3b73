"""The archiver end to end: a real Relais server process, the real packaging and the
real MSSanté transport to the loopback Postfix + Dovecot of the archive tests (STARTTLS,
a client certificate from the test CA). Archives are read back over IMAP."""

from __future__ import annotations

import asyncio
import email
import hashlib
import io
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from channels.db import database_sync_to_async as sync_to_async
from lxml import etree

from archive.delivery import SmtpDelivery
from archive.mail import XDM_ATTACHMENT
from archive.metadata import NS, Scheme
from archive.outbox import ArchiveState, Backoff, Outbox
from archive.packaging import Packaging
from archive.ports import Accepted
from archive.service import ArchiveService, ArchivingClient, ServiceSettings
from client.store import KeyStore
from client.teleexpertise.profile import RoomProfileContent
from documents.cda import check_cda
from tests.archive.relais import (  # noqa: F401 (fixtures)
    DOCTOR,
    NURSE,
    ORGANISATION,
    PASSPHRASE,
    PHYSIO,
    Clock,
    archiver_and_outbox,
    registered_archiver,
    relais,
    requested_teleexpertise,
    server_env,
    write_token_file,
)
from tests.e2e.sdk import new_client, next_message
from tests.e2e.server import ROOT
from tests.e2e.teleexpertise_helpers import (
    next_event,
    plaintext_found,
    wound_photo,
)
from tests.teleexpertise.samples import patient

pytestmark = pytest.mark.e2e
TEXT = "Pansement refait, plaie propre, exsudat séreux."


async def archiving(server, tmp_path: Path, mail_server, *, client_kind: str = "good"):
    clock, lines = Clock(), list[str]()
    sender, records = mail_server.users["archiver"], mail_server.users["records"]
    client, outbox = await archiver_and_outbox(
        server,
        tmp_path,
        clock=clock,
        backoff=Backoff(base=timedelta(seconds=30)),
    )
    client.save()
    delivery = SmtpDelivery(mail_server.smtp_config(client_kind), mail_server.imap_config())
    service = ArchiveService(
        client=client,
        outbox=outbox,
        packager=Packaging(client=client, sender=sender, recipients=(records,)),
        delivery=delivery,
        settings=ServiceSettings(sender=sender, recipients=(records,)),
        out=lines.append,
        clock=clock,
    )
    await client.connect()
    return service, clock, lines


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, _class=EmailMessage, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def zip_hashes(raw: bytes) -> set[str]:
    for part in parsed(raw).iter_attachments():
        if part.get_filename() == XDM_ATTACHMENT:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                return {hashlib.sha256(archive.read(n)).hexdigest() for n in archive.namelist()}
    raise AssertionError("no IHE_XDM.zip")


async def test_chat_with_a_photo_arrives_once_and_is_integrated(relais, tmp_path, mail_server):  # noqa: F811
    service, clock, _ = await archiving(relais, tmp_path, mail_server)
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    physio = await new_client(relais.http_url, tmp_path, PHYSIO, "physio")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    private = await nurse.create_room(kind="care_team", members=[PHYSIO])
    profile = RoomProfileContent(title="Mme PAT-TROIS — plaie talon", patient=patient())
    await nurse.set_room_profile(room, profile.to_dict())
    await nurse.send_text(room, TEXT)
    await nurse.send_photo(room, wound_photo(), name="plaie-talon.jpg")
    await nurse.send_text(private, "Jamais archivé.")
    assert (await next_message(doctor)).text == TEXT
    seen = await next_message(doctor)
    assert seen.attachment is not None
    photo = (await doctor.save_attachment(seen.attachment, tmp_path / "doctor")).read_bytes()

    await service.turn()
    clock.now += timedelta(hours=2, seconds=1)  # idle: the room is cut
    await service.turn()
    [raw] = await asyncio.to_thread(mail_server.wait_for_mail, "records", 1)
    [archive] = service.outbox.archives()
    message = parsed(raw)
    assert message["Message-ID"] == archive.message_id
    assert message["X-MSS-NIL"]
    assert message["X-MSS-INS"] == "O"
    assert hashlib.sha256(photo).hexdigest() in zip_hashes(raw)
    # More turns send nothing more; the room not naming the archiver is never archived.
    clock.now += timedelta(hours=3)
    await service.turn()
    assert len(await asyncio.to_thread(mail_server.mailbox, "records")) == 1
    assert service.outbox.progress(private) is None
    # The records office integrates it: the MDN is read back over IMAP.
    await asyncio.to_thread(mail_server.inject_mdn, original=message)
    await asyncio.to_thread(mail_server.wait_for_mail, "archiver", 1)
    clock.now += timedelta(minutes=2)
    await service.turn()
    assert service.outbox.archive(archive.id).state is ArchiveState.INTEGRATED
    # The Relais server holds none of it.
    found = await plaintext_found([TEXT, "PAT-TROIS"], [tmp_path / "server.log"])
    assert found == []
    for client in (nurse, doctor, physio, service.client):
        await client.close()


def xdm_zip(raw: bytes) -> dict[str, bytes]:
    for part in parsed(raw).iter_attachments():
        if part.get_filename() == XDM_ATTACHMENT:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                return {name: archive.read(name) for name in archive.namelist()}
    raise AssertionError("no IHE_XDM.zip")


def documents_by_type(metadata: bytes) -> dict[str, list[str]]:
    """METADATA.XML's document entries: type code -> the files (URI) of that type."""
    found: dict[str, list[str]] = {}
    for entry in etree.fromstring(metadata).iterfind(".//rim:ExtrinsicObject", NS):
        [code] = [
            c.get("nodeRepresentation")
            for c in entry.iterfind("rim:Classification", NS)
            if c.get("classificationScheme") == Scheme.TYPE_CODE
        ]
        [uri] = [
            v.text for v in entry.iterfind("rim:Slot[@name='URI']/rim:ValueList/rim:Value", NS)
        ]
        found.setdefault(str(code), []).append(str(uri))
    return found


def pdf_text(pdf: bytes) -> str:
    done = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode("utf-8")


async def test_a_teleexpertise_closed_arrives_with_its_report_as_its_own_document(
    relais,  # noqa: F811 (fixture)
    tmp_path,
    mail_server,
):
    service, _, _ = await archiving(relais, tmp_path, mail_server)
    nurse, nurse_te, doctor, doctor_te, room = await requested_teleexpertise(relais, tmp_path)
    await doctor_te.accept(room)
    await next_event(nurse_te)
    reported = await doctor_te.report(room, "Hydrocolloïde, contrôle à J+7.")
    assert reported.documents is not None
    await next_event(nurse_te)
    await service.turn()
    assert service.outbox.archives() == []  # answered is not final
    await nurse_te.close(room)
    await service.turn()
    [raw] = await asyncio.to_thread(mail_server.wait_for_mail, "records", 1)
    [archive] = service.outbox.archives()
    assert (archive.reason, archive.first_seq, archive.last_seq) == ("teleexpertise_final", 1, 4)
    message = parsed(raw)
    assert message["Message-ID"] == archive.message_id
    assert "85208-7" in str(message["X-MSS-CODECDA"])
    files = xdm_zip(raw)
    subset = "IHE_XDM/SUBSET01/"
    by_type = documents_by_type(files[subset + "METADATA.XML"])
    # The compte rendu is its own 85208-7 document, the CDA as the requis made it.
    [report_file] = by_type["85208-7"]
    assert files[subset + report_file] == reported.documents.cda
    # The transcript is DOC0001.XML, a CDA embedding the PDF attached to the mail (the
    # request's own files are documents of the exchange, with the transcript's type).
    transcript_file = "DOC0001.XML"
    assert transcript_file in by_type["11488-4"]
    transcript_pdf = {
        part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()
    }[f"transcription-salon-{room}-1-4.pdf"]
    assert isinstance(transcript_pdf, bytes)
    assert check_cda(files[subset + transcript_file]).pdf == transcript_pdf
    assert "téléexpertise clôturée" in pdf_text(transcript_pdf)
    for client in (nurse, doctor, service.client):
        await client.close()


async def test_a_removed_archiver_gets_nothing_sent_after_its_removal(
    relais,  # noqa: F811 (fixture)
    tmp_path,
    mail_server,
):
    service, clock, _ = await archiving(relais, tmp_path, mail_server)
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    await nurse.send_text(room, "Avant le retrait de l'archiveur.")
    before = await next_message(doctor)
    await service.turn()
    await nurse._change(room, "set_archiver", {"archiver": None})  # signed by the admin
    await nurse.send_text(room, "Après le retrait de l'archiveur.")
    after = await next_message(doctor)
    assert after.text == "Après le retrait de l'archiveur."
    await service.turn()
    [raw] = await asyncio.to_thread(mail_server.wait_for_mail, "records", 1)
    [archive] = service.outbox.archives()
    assert archive.reason == "archiver_removed"
    assert archive.first_seq == before.seq
    assert before.seq <= archive.last_seq < after.seq
    assert parsed(raw)["Message-ID"] == archive.message_id
    pdfs = [
        part.get_payload(decode=True)
        for part in parsed(raw).iter_attachments()
        if part.get_content_type() == "application/pdf"
    ]
    [pdf] = [p for p in pdfs if isinstance(p, bytes)]
    text = pdf_text(pdf)
    assert "Avant le retrait" in text
    assert "Après le retrait" not in text
    assert "archiveur retiré du salon" in text
    # Never again: days later, nothing more reaches the records mailbox.
    clock.now += timedelta(days=2)
    await service.turn()
    assert len(await asyncio.to_thread(mail_server.mailbox, "records")) == 1
    assert service.outbox.received(room, 1, after.seq + 10) == []
    for client in (nurse, doctor, service.client):
        await client.close()


async def test_mail_server_down_then_up_and_a_foreign_certificate(relais, tmp_path, mail_server):  # noqa: F811
    service, clock, lines = await archiving(relais, tmp_path, mail_server, client_kind="foreign")
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    await nurse.send_text(room, "premier")
    await service.turn()
    service.outbox.request_cut(room)
    await service.turn()
    [archive] = service.outbox.archives()
    kept = service.outbox.archive(archive.id)
    assert kept.state is ArchiveState.PENDING  # kept for retry, with a clear error
    assert kept.error_code
    assert any(kept.error_code in line and "/" in line for line in lines)
    # The right certificate, but the operator down for a while.
    service.delivery = SmtpDelivery(mail_server.smtp_config("good"), mail_server.imap_config())
    await asyncio.to_thread(mail_server.stop_smtp)
    await nurse.send_text(room, "second")
    await service.turn()
    service.outbox.request_cut(room)
    clock.now += timedelta(minutes=1)
    await service.turn()
    assert [a.state for a in service.outbox.archives()] == [ArchiveState.PENDING] * 2
    await asyncio.to_thread(mail_server.start_smtp)
    for _ in range(4):
        clock.now += timedelta(minutes=2)
        await service.turn()
    assert [a.state for a in service.outbox.archives()] == [ArchiveState.SENT] * 2
    mails = await asyncio.to_thread(mail_server.wait_for_mail, "records", 2)
    ids = sorted(parsed(m)["Message-ID"] for m in mails)
    assert ids == sorted(a.message_id for a in service.outbox.archives())  # each once
    for client in (nurse, doctor, service.client):
        await client.close()


def archiver_process(server, tmp_path: Path, mail_server, log: Path) -> subprocess.Popen[bytes]:
    smtp = mail_server.smtp_config()
    env = {
        "PATH": os.environ["PATH"],
        "RELAIS_SERVER": server.http_url,
        "RELAIS_PASSPHRASE": PASSPHRASE,
        "RELAIS_ARCHIVE_STATE_DIR": str(tmp_path / "state"),
        "RELAIS_ARCHIVE_STORE": str(tmp_path / "archiver.store"),
        "RELAIS_ARCHIVE_TOKEN_FILE": str(tmp_path / "archiver.json"),
        "RELAIS_ARCHIVE_MAILBOX": mail_server.users["archiver"],
        "RELAIS_ARCHIVE_RECIPIENTS": mail_server.users["records"],
        "RELAIS_ARCHIVE_SYNC_SECONDS": "1",
        "RELAIS_ARCHIVE_RECEIPTS_SECONDS": "1",
        "RELAIS_ARCHIVE_RETRY_SECONDS": "1",
        "RELAIS_ARCHIVE_DAILY_HOUR": "off",
        "RELAIS_ARCHIVE_SMTP_HOST": smtp.host,
        "RELAIS_ARCHIVE_SMTP_PORT": str(smtp.port),
        "RELAIS_ARCHIVE_SMTP_CLIENT_CERT": str(smtp.client_cert),
        "RELAIS_ARCHIVE_SMTP_CLIENT_KEY": str(smtp.client_key),
        "RELAIS_ARCHIVE_SMTP_CA_BUNDLE": str(smtp.ca_bundle),
        "RELAIS_ARCHIVE_SMTP_USERNAME": smtp.username or "",
        "RELAIS_ARCHIVE_SMTP_PASSWORD": smtp.password or "",
        "RELAIS_ARCHIVE_IMAP_PORT": str(mail_server.imap_port),
    }
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "client", "archive", "run"],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


RECEIVER_TRACE = (b"return-path:", b"delivered-to:", b"received:", b"x-original-to:")


def as_sent(raw: bytes) -> bytes:
    """``raw`` without the trace lines the receiving side put above the sent headers."""
    lines = raw.split(b"\r\n")
    start = 0
    while start < len(lines) and (
        lines[start].lower().startswith(RECEIVER_TRACE)
        or (start > 0 and lines[start][:1] in (b" ", b"\t"))
    ):
        start += 1
    return b"\r\n".join(lines[start:])


async def wait_until(predicate, seconds: float = 60.0) -> None:
    """Poll what another process writes in its database (nothing to wait on)."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 (another process's SQLite file)
            await asyncio.sleep(0.05)


async def test_sigkill_mid_send_loses_nothing_and_sends_nothing_different(
    relais,  # noqa: F811 (fixture)
    tmp_path,
    mail_server,
):
    await sync_to_async(write_token_file)(tmp_path / "archiver.json")
    # Register once, so that rooms can name it (the service reuses the key store).
    store = KeyStore.open(tmp_path / "archiver.store", PASSPHRASE, n=2**10)
    first = ArchivingClient(server=relais.http_url, store=store)
    await first.register_from_file(tmp_path / "archiver.json")
    await first.close()
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    rooms = [
        await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
        for _ in range(3)
    ]
    for room in rooms:
        await nurse.send_text(room, f"salon {room}")
    log = tmp_path / "archiver.log"
    process = archiver_process(relais, tmp_path, mail_server, log)
    outbox = Outbox(tmp_path / "state", None)
    await wait_until(lambda: len(outbox.all_progress()) == 3)
    await asyncio.to_thread(mail_server.stop_smtp)  # sends will hang on retries
    for room in rooms:
        outbox.request_cut(room)
    await wait_until(lambda: any(t["action"] == "send" for t in outbox.traces()))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    await asyncio.to_thread(mail_server.start_smtp)
    process = archiver_process(relais, tmp_path, mail_server, log)
    try:
        await wait_until(lambda: len(outbox.archives()) == 3, seconds=90)
        await wait_until(
            lambda: all(a.state is ArchiveState.SENT for a in outbox.archives()), seconds=90
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    mails = await asyncio.to_thread(mail_server.wait_for_mail, "records", 3)
    # Every copy of an archive that arrived, resent after the crash or not, is byte for
    # byte the same under its one Message-ID (what the receiving side prepends, its
    # Return-Path, Delivered-To and Received lines, set aside).
    by_id: dict[str, set[bytes]] = {}
    for raw in mails:
        by_id.setdefault(str(parsed(raw)["Message-ID"]), set()).add(as_sent(raw))
    assert sorted(by_id) == sorted(a.message_id for a in outbox.archives())
    assert all(len(copies) == 1 for copies in by_id.values())  # never different bytes
    assert "Traceback" not in log.read_text()
    await nurse.close()
    await doctor.close()


class Crash(BaseException):
    """The process dies: nothing after this line of the service runs."""


class CrashAfterAccepted(SmtpDelivery):
    """The real send, then a crash before the service can mark the archive sent."""

    def send(self, mail: bytes, *, sender: str, recipients: Sequence[str]) -> Accepted:
        super().send(mail, sender=sender, recipients=recipients)
        raise Crash


async def test_a_crash_between_the_250_and_the_sent_mark_resends_the_same_bytes(
    relais,  # noqa: F811 (fixture)
    tmp_path,
    mail_server,
):
    service, clock, _ = await archiving(relais, tmp_path, mail_server)
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    await nurse.send_text(room, TEXT)
    await service.turn()
    service.outbox.request_cut(room)
    service.delivery = CrashAfterAccepted(mail_server.smtp_config(), mail_server.imap_config())
    with pytest.raises(Crash):
        await service.turn()
    [archive] = service.outbox.archives()
    assert archive.state is ArchiveState.PENDING  # the 250 came, the mark did not
    [first] = await asyncio.to_thread(mail_server.wait_for_mail, "records", 1)
    # Started again: the pending archive is sent again.
    service.delivery = SmtpDelivery(mail_server.smtp_config(), mail_server.imap_config())
    clock.now += timedelta(minutes=1)
    await service.turn()
    assert service.outbox.archive(archive.id).state is ArchiveState.SENT
    copies = await asyncio.to_thread(mail_server.wait_for_mail, "records", 2)
    assert copies[0] == first
    # Two copies: the same Message-ID and, byte for byte, the same mail; only the
    # receiving side's trace lines above them differ.
    assert [parsed(copy)["Message-ID"] for copy in copies] == [archive.message_id] * 2
    assert as_sent(copies[0]) == as_sent(copies[1])
    assert as_sent(copies[0]).startswith(b"From:")  # the sender's own headers on
    assert copies[0] != copies[1]  # two deliveries, each traced by the receiver
    for client in (nurse, doctor, service.client):
        await client.close()
