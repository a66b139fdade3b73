"""The real ``Delivery``: the MSSanté operator over SMTP (``archive.transport``) and
the receipts in the archiver's mailbox over IMAP (``archive.receipts``)."""

from __future__ import annotations

import email
from collections.abc import Sequence
from email import policy
from email.message import EmailMessage

from archive.ports import Accepted, MailError, ReceiptBatch, ReceiptSeen
from archive.receipts import parse_receipt
from archive.transport import (
    ImapConfig,
    SmtpConfig,
    TransportError,
    fetch_new,
    send_mail,
)


def _mail_error(error: TransportError) -> MailError:
    return MailError(
        error.code,
        permanent=error.permanent,
        reply=error.reply,
        message_en=error.message_en,
        message_fr=error.message_fr,
    )


class SmtpDelivery:
    def __init__(self, smtp: SmtpConfig, imap: ImapConfig) -> None:
        self.smtp = smtp
        self.imap = imap

    def describe(self) -> str:
        return f"smtp {self.smtp.host}:{self.smtp.port}"

    def send(self, mail: bytes, *, sender: str, recipients: Sequence[str]) -> Accepted:
        message = email.message_from_bytes(mail, _class=EmailMessage, policy=policy.SMTP)
        if not isinstance(message, EmailMessage):
            raise TypeError("not a mail")
        try:
            result = send_mail(
                self.smtp, message, envelope_sender=sender, recipients=list(recipients)
            )
        except TransportError as error:
            raise _mail_error(error) from None
        refused = "; ".join(f"{to}: {reply}" for to, reply in sorted(result.refused.items()))
        reply = f"{result.reply} (refused: {refused})" if refused else result.reply
        return Accepted(str(result.code), reply, dict(result.refused))

    def receipts(self, *, after_uid: int) -> ReceiptBatch:
        try:
            batch = fetch_new(self.imap, after_uid=after_uid)
        except TransportError as error:
            raise _mail_error(error) from None
        seen = []
        last = after_uid
        for mail in batch.mails:
            last = max(last, mail.uid)
            receipt = parse_receipt(mail.raw)
            if receipt is not None:
                seen.append(
                    ReceiptSeen(
                        uid=mail.uid,
                        original_message_id=receipt.original_message_id,
                        outcome=receipt.outcome,
                        code=receipt.code,
                        text=receipt.text,
                    )
                )
        return ReceiptBatch(
            uidvalidity=batch.uidvalidity, last_uid=last, receipts=seen, more=batch.more
        )
