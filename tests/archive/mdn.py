"""MDNs as an MSSanté receiving system writes them, for the receipt tests."""

from __future__ import annotations

import datetime
import uuid
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def build_mdn(
    *,
    original: EmailMessage,
    sender: str,
    to: str,
    code: int | None = None,
    label: str = "",
) -> bytes:
    """An MDN (RFC 8098) as an MSSanté receiving system sends it, laid out as the ANS
    example (volet "transmission de documents CDA … par messagerie sécurisée", MDN
    structure): ``processed`` on integration; ``processed/Error: <code>^<label>^…`` and
    a ``[KO Intégration système !][<code>]`` subject when it could not integrate; the
    original mail attached. Written out byte by byte (8-bit UTF-8 in the report part,
    as the example), not through the email package's generator."""
    subject = str(original["Subject"] or "")
    if code:
        subject = f"[KO Intégration système !][{code}] {subject}"
        text = (
            "Le document n'a pas pu être intégré.\r\n"
            f"Le système a retourné l'erreur {code}^{label}^messageErrorCondition"
            "| E^Error^errorSeverity\r\n"
        )
        disposition = (
            "automatic-action/MDN-sent-automatically; processed/Error: "
            f"{code}^{label}^messageErrorCondition| E^Error^errorSeverity"
        )
    else:
        text = "Le document a été intégré.\r\n"
        disposition = "automatic-action/MDN-sent-automatically; processed"
    boundary = f"report-{uuid.uuid4().hex}"
    headers = EmailMessage(policy=policy.SMTP)
    headers["Date"] = format_datetime(datetime.datetime.now(datetime.UTC))
    headers["From"] = sender
    headers["To"] = to
    headers["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    headers["Subject"] = subject  # RFC 2047-encoded by the policy
    headers["MIME-Version"] = "1.0"
    headers["Content-Type"] = (
        f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'
    )
    head = b"".join(policy.SMTP.fold_binary(name, value) for name, value in headers.items())
    body = (
        f"--{boundary}\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{text}\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/disposition-notification\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"Original-Recipient: rfc822;{sender}\r\n"
        f"Final-Recipient: rfc822;{sender}\r\n"
        f"Original-Message-ID: {original['Message-ID']}\r\n"
        f"Disposition: {disposition}\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
    ).encode()
    returned = original.as_bytes(policy=policy.SMTP)
    return head + b"\r\n" + body + returned + f"\r\n--{boundary}--\r\n".encode()


def build_error_mail(*, original: EmailMessage, sender: str, to: str, code: int) -> bytes:
    """The ordinary mail a receiving system sends when it could not integrate a mail
    that asked for no MDN (ANS, same volet): subject ``[Erreur d'intégration !][<code>]``
    followed by the original subject, a French text, the original mail as
    ``message/rfc822``, then its attachments again."""
    mail = EmailMessage(policy=policy.SMTP)
    mail["Date"] = format_datetime(datetime.datetime.now(datetime.UTC))
    mail["From"] = sender
    mail["To"] = to
    mail["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    mail["Subject"] = f"[Erreur d'intégration !][{code}] {original['Subject']}"
    mail.set_content(
        f"Le message ci-joint n'a pas pu être intégré (erreur {code}).\n", charset="utf-8"
    )
    mail.add_attachment(original)
    for part in original.iter_attachments():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            mail.add_attachment(
                payload,
                maintype=part.get_content_maintype(),
                subtype=part.get_content_subtype(),
                filename=part.get_filename(),
            )
    return mail.as_bytes()
