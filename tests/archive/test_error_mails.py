"""``[Erreur d'intégration !][<code>]`` mails: what a receiving system sends, instead of
an MDN, when it could not integrate an archive that asked for none. Put in the
archiver's Dovecot mailbox through the loopback operator, read back over IMAP, they
mark the archive rejected with their code."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from archive.cuts import Cut, CutReason, RoomProgress
from archive.delivery import SmtpDelivery
from archive.outbox import ArchiveState, NewArchive, Outbox
from archive.receipts import Receipt, parse_receipt
from archive.sealing import Sealer, new_key
from archive.status import room_statuses, status_lines
from tests.archive.mailserver import MailServer
from tests.archive.mdn import build_error_mail

pytestmark = pytest.mark.timeout(180)
START = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
SUBJECT = "XDM/1.0/DDM+Échanges Relais DUPONT Jeanne 01/02/1950"


def archive_mail(server: MailServer) -> EmailMessage:
    message = EmailMessage()
    message["From"] = server.users["archiver"]
    message["To"] = server.users["records"]
    message["Subject"] = SUBJECT
    message["Message-ID"] = make_msgid(domain="archive.relais")
    message.set_content("Archive de conversation.\n")
    message.add_attachment(
        b"PK\x05\x06" + bytes(18), maintype="application", subtype="zip", filename="IHE_XDM.zip"
    )
    return message


def test_an_error_mail_marks_the_archive_rejected_with_its_code(
    mail_server: MailServer, tmp_path
) -> None:
    outbox = Outbox(tmp_path, Sealer(new_key()), clock=lambda: START)
    delivery = SmtpDelivery(mail_server.smtp_config(), mail_server.imap_config())
    message = archive_mail(mail_server)
    progress = RoomProgress(room_id=4, kind="care_team").received(1, START)
    raw = message.as_bytes(policy=policy.SMTP)
    archive_id = outbox.add_archive(
        progress,
        NewArchive(
            cut=Cut(4, 1, 1, CutReason.ON_DEMAND, START),
            message_id=message["Message-ID"],
            attachment_name="IHE_XDM.zip",
            recipients=(mail_server.users["records"],),
            mail=raw,
        ),
    )
    archive = outbox.archive(archive_id)
    answer = delivery.send(raw, sender=mail_server.users["archiver"], recipients=archive.recipients)
    outbox.mark_sent(archive, code=answer.code, reply=answer.reply)
    [received] = mail_server.wait_for_mail("records", 1)

    # The records office's system cannot find the patient and says so by mail.
    original = email.message_from_bytes(received, _class=EmailMessage, policy=policy.default)
    assert isinstance(original, EmailMessage)
    error = build_error_mail(
        original=original,
        sender=mail_server.users["records"],
        to=mail_server.users["archiver"],
        code=902,
    )
    mail_server.submit(error, user="records", to="archiver")
    mail_server.wait_for_message("archiver", b"Erreur")

    batch = delivery.receipts(after_uid=0)
    [seen] = batch.receipts
    assert (seen.original_message_id, seen.outcome, seen.code) == (
        message["Message-ID"],
        "rejected",
        902,
    )
    outbox.mark_receipt(
        message_id=seen.original_message_id,
        outcome=seen.outcome,
        code=seen.code,
        text=seen.text,
        request=f"imap uid {seen.uid}",
    )
    stored = outbox.archive(archive_id)
    assert (stored.state, stored.receipt_code) == (ArchiveState.REJECTED, 902)
    [status] = room_statuses(outbox)
    assert (status.rejected, status.last_error_code) == (1, "902")
    assert "rejected 902: patient inconnu" in "\n".join(status_lines([status]))
    # Nothing of the subject (it names the patient) is kept.
    assert "DUPONT" not in str(outbox.traces()) + str(status.to_json())


def test_the_subject_gives_the_code_and_the_original_the_archive() -> None:
    original = EmailMessage()
    original["Message-ID"] = "<relais.1750000123.4.1-9@archive.relais>"
    original["Subject"] = SUBJECT
    original.set_content("x\n")
    raw = build_error_mail(original=original, sender="a@b.test", to="c@d.test", code=904)
    assert parse_receipt(raw) == Receipt(
        original_message_id="<relais.1750000123.4.1-9@archive.relais>",
        kind="error_mail",
        outcome="rejected",
        code=904,
        status="error_mail",
        text="INS présent mais traits ou matricule différents de ceux du destinataire",
    )
    # Without the original attached, In-Reply-To names the archive.
    bare = EmailMessage()
    bare["Subject"] = "[Erreur d\u2019intégration !][906] XDM/1.0/DDM+…"  # typographic apostrophe
    bare["In-Reply-To"] = "<relais.1750000123.4.10-12@archive.relais>"
    bare.set_content("Erreur.\n")
    receipt = parse_receipt(bare.as_bytes())
    assert receipt is not None
    assert (receipt.original_message_id, receipt.code) == (
        "<relais.1750000123.4.10-12@archive.relais>",
        906,
    )
    # Any other subject, or no way to tell which archive, is not a receipt.
    bare.replace_header("Subject", "Re: Erreur d'intégration [906]")
    assert parse_receipt(bare.as_bytes()) is None
    del bare["In-Reply-To"]
    bare.replace_header("Subject", "[Erreur d'intégration !][906] x")
    assert parse_receipt(bare.as_bytes()) is None
