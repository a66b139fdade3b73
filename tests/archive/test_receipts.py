"""MDNs and bounces read back from the archiver's mailbox."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from archive.receipts import MAX_RECEIPT_BYTES, MSSANTE_ERRORS, Receipt, parse_receipt
from archive.transport import fetch_new, send_mail
from tests.archive.mailserver import MailServer, build_mdn

pytestmark = pytest.mark.timeout(180)

ARCHIVER = "archiver@relais.mssante.test"
RECORDS = "archives@relais.mssante.test"


def archive_mail(*, to: str = RECORDS) -> EmailMessage:
    message = EmailMessage()
    message["From"] = ARCHIVER
    message["To"] = to
    message["Subject"] = "XDM/1.0/DDM+Transcription DUPONT Jeanne 01/02/1950"
    message["Message-ID"] = make_msgid(domain="relais.mssante.test")
    message["Disposition-Notification-To"] = ARCHIVER
    message.set_content("Archive de conversation.\n")
    return message


def test_bounce_from_postfix_for_an_undeliverable_archive_is_a_failed_receipt(
    mail_server: MailServer,
) -> None:
    # Postfix accepts the mail (the address is in its table), Dovecot's LMTP refuses it,
    # and Postfix returns a delivery status notification to the archiver's mailbox.
    message = archive_mail(to=mail_server.bouncing_address)
    send_mail(mail_server.smtp_config(), message)
    bounce = mail_server.wait_for_message("archiver", message["Message-ID"].encode())
    assert b"report-type=delivery-status" in bounce

    receipt = parse_receipt(bounce)
    assert receipt is not None
    assert receipt.original_message_id == message["Message-ID"]
    assert receipt.kind == "dsn"
    assert receipt.outcome == "failed"
    assert receipt.code is None
    assert receipt.status == "5.1.1"
    assert "User doesn't exist" in receipt.text
    assert "DUPONT" not in receipt.text


def test_mdn_with_error_901_read_back_over_imap(mail_server: MailServer) -> None:
    message = archive_mail()
    send_mail(mail_server.smtp_config(), message)
    mail_server.wait_for_mail("records", 1)
    mail_server.inject_mdn(
        original=message,
        code=901,
        label="Auteur non autorisé à remplacer le document",
    )
    mail_server.wait_for_message("archiver", message["Message-ID"].encode())

    receipts = [
        parse_receipt(mail.raw) for mail in fetch_new(mail_server.imap_config(), after_uid=0)
    ]
    assert receipts == [
        Receipt(
            original_message_id=message["Message-ID"],
            kind="mdn",
            outcome="rejected",
            code=901,
            status="processed/error",
            text="Auteur non autorisé à remplacer le document",
        )
    ]


def test_mdn_without_error_means_integrated(mail_server: MailServer) -> None:
    message = archive_mail()
    mail_server.inject_mdn(original=message)
    raw = mail_server.wait_for_message("archiver", message["Message-ID"].encode())
    assert parse_receipt(raw) == Receipt(
        original_message_id=message["Message-ID"],
        kind="mdn",
        outcome="integrated",
        code=None,
        status="processed",
        text="",
    )


@pytest.mark.parametrize("code", sorted(MSSANTE_ERRORS))
def test_every_mssante_error_code_is_a_rejection(code: int) -> None:
    message = archive_mail()
    mdn = build_mdn(original=message, sender=RECORDS, to=ARCHIVER, code=code, label="")
    receipt = parse_receipt(mdn)
    assert receipt is not None
    assert (receipt.outcome, receipt.code) == ("rejected", code)
    # Without a label from the receiver, the code's meaning from the ANS table.
    assert receipt.text == MSSANTE_ERRORS[code][1]


# The example of the ANS specification (struct-msg-mdn.md), with its folded Content-Type,
# its "Disposition:" without a space and an 8-bit French text part.
ANS_EXAMPLE = """\
Date: Tue, 20 Feb 2024 00:19:00 +0100 (CET)
From: serviceY_auto@chb.mssante.fr
Message-ID: <20240220001900.12345@chb.mssante.fr>
Subject: [KO Int\u00e9gration syst\u00e8me !][902] XDM/1.0/DDM+ECHOGRAPHIE CORSE F 12/10/1988
To: serviceY@chb.mssante.fr
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
 boundary="RAA14128.773615765"

--RAA14128.773615765
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: 8bit

Le document n\u2019a pas pu \u00eatre int\u00e9gr\u00e9.

--RAA14128.773615765
Content-Type: message/disposition-notification

Original-Recipient: rfc822;serviceY_auto@chb.mssante.fr
Final-Recipient: rfc822;serviceY_auto@chb.mssante.fr
Original-Message-ID: <20240219230100.23456@chb.mssante.fr>
Disposition:automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant de \
patient inconnu^messageErrorCondition| E^Error^errorSeverity

--RAA14128.773615765
Content-Type: message/rfc822

Subject: XDM/1.0/DDM+ECHOGRAPHIE CORSE FIGATELLIX 12/10/1988

Ici le courriel d'origine.

--RAA14128.773615765--
"""


def test_the_specification_example_mdn() -> None:
    receipt = parse_receipt(ANS_EXAMPLE.replace("\n", "\r\n").encode())
    assert receipt == Receipt(
        original_message_id="<20240219230100.23456@chb.mssante.fr>",
        kind="mdn",
        outcome="rejected",
        code=902,
        status="processed/error",
        text="Identifiant de patient inconnu",
    )


def test_deleted_disposition_is_a_rejection_without_code() -> None:
    raw = ANS_EXAMPLE.replace(
        "processed/Error: 902^Identifiant de patient inconnu^messageErrorCondition| "
        "E^Error^errorSeverity",
        "deleted",
    ).encode()
    receipt = parse_receipt(raw)
    assert receipt is not None
    assert (receipt.outcome, receipt.code, receipt.status) == ("rejected", None, "deleted")


def test_ordinary_mail_and_malformed_reports_are_not_receipts() -> None:
    assert parse_receipt(archive_mail().as_bytes()) is None
    assert parse_receipt(b"") is None
    assert parse_receipt(b"\x00\xff garbage \r\n\r\n") is None
    no_id = ANS_EXAMPLE.replace("Original-Message-ID: <20240219230100.23456@chb.mssante.fr>\n", "")
    assert parse_receipt(no_id.encode()) is None
    other_report = ANS_EXAMPLE.replace("report-type=disposition-notification", "report-type=x")
    assert parse_receipt(other_report.encode()) is None


def test_delayed_delivery_notice_is_not_a_final_receipt() -> None:
    report = email.message_from_string(
        "From: MAILER-DAEMON@mx.mssante.test\n"
        "To: archiver@relais.mssante.test\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B\n"
        "\n--B\nContent-Type: text/plain\n\ndelayed\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.mssante.test\n\n"
        "Final-Recipient: rfc822; archives@relais.mssante.test\n"
        "Action: delayed\nStatus: 4.4.1\n"
        "\n--B\nContent-Type: text/rfc822-headers\n\n"
        "Message-ID: <a@relais.mssante.test>\n"
        "\n--B--\n",
        policy=policy.compat32,
    )
    assert parse_receipt(report.as_bytes()) is None
    failed = report.as_string().replace(
        "Action: delayed\nStatus: 4.4.1", "Action: failed\nStatus: 5.2.2"
    )
    receipt = parse_receipt(failed.encode())
    assert receipt is not None
    # The returned headers only (RET=HDRS) are enough to find the archive.
    assert (receipt.original_message_id, receipt.status) == ("<a@relais.mssante.test>", "5.2.2")


def test_receipt_input_is_bounded() -> None:
    # A huge MDN (the archive re-attached): the report comes first and is still read.
    original = archive_mail()
    original.add_attachment(
        bytes(MAX_RECEIPT_BYTES * 2), maintype="application", subtype="zip", filename="IHE_XDM.zip"
    )
    raw = build_mdn(original=original, sender=RECORDS, to=ARCHIVER, code=903, label="INS")
    assert len(raw) > MAX_RECEIPT_BYTES * 2
    receipt = parse_receipt(raw)
    assert receipt is not None
    assert (receipt.code, receipt.text) == (903, "INS")
