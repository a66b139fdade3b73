"""Stand-ins for the mail side in the service's own tests: a packager that writes the
range and the texts into a small mail, and a delivery that keeps what it is given and
can be made to fail. The end-to-end tests use the real ones (test_service_e2e.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from archive.cuts import Cut
from archive.outbox import NewArchive
from archive.ports import Accepted, MailError, ReceiptBatch, ReceiptSeen
from archive.records import ReceivedRecord

RECIPIENT = "archives@cds-pentes.mssante.fr"


class FakePackager:
    async def package(self, cut: Cut, records: Sequence[ReceivedRecord]) -> NewArchive:
        message_id = f"<{cut.room_id}.{cut.first_seq}.{cut.last_seq}@archive.test>"
        body = json.dumps(
            {
                "range": [cut.first_seq, cut.last_seq],
                "reason": cut.reason.value,
                "messages": [[r.seq, r.national_id, r.content.get("text", "")] for r in records],
            }
        )
        mail = f"Message-ID: {message_id}\r\n\r\n{body}".encode()
        return NewArchive(cut, message_id, "IHE_XDM.ZIP", (RECIPIENT,), mail)


def body_of(mail: bytes) -> Any:
    return json.loads(mail.split(b"\r\n\r\n", 1)[1])


@dataclass
class FakeDelivery:
    sent: list[bytes] = field(default_factory=list)
    failure: MailError | None = None
    receipts_waiting: list[ReceiptSeen] = field(default_factory=list)

    def describe(self) -> str:
        return "smtp fake:587"

    def send(self, mail: bytes, *, sender: str, recipients: Sequence[str]) -> Accepted:
        if self.failure is not None:
            raise self.failure
        self.sent.append(mail)
        return Accepted("250", f"2.0.0 Ok: queued as Q{len(self.sent)}")

    def receipts(self, *, after_uid: int) -> ReceiptBatch:
        fresh = [r for r in self.receipts_waiting if r.uid > after_uid]
        last = max([r.uid for r in fresh], default=after_uid)
        return ReceiptBatch(uidvalidity=1, last_uid=last, receipts=fresh)


DOWN = MailError(
    "smtp_unreachable",
    permanent=False,
    reply="[Errno 111] Connection refused",
    message_en="The mail server cannot be reached; the mail will be sent again later.",
    message_fr="Le serveur de messagerie est injoignable ; le courriel sera renvoyé plus tard.",
)
REFUSED = MailError(
    "smtp_refused",
    permanent=True,
    reply="550 5.1.1 Recipient address rejected",
    message_en="The mail server refused the mail for good.",
    message_fr="Le serveur de messagerie a refusé le courriel définitivement.",
)
