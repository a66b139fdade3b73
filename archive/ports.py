"""What the archiver service needs from the packaging (``archive.mail``) and the mail
transport (``archive.transport``, ``archive.receipts``), as small interfaces: the service
is tested with fakes of them, and runs with the real ones (``archive.packaging``,
``archive.delivery``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from archive.cuts import Cut
from archive.outbox import NewArchive
from archive.records import ReceivedRecord


class PackagingError(Exception):
    """An archive could not be built now (the Relais server is unreachable for an
    attachment, a value out of limits): the room is tried again on the next turn."""

    def __init__(self, code: str, message_en: str, message_fr: str) -> None:
        super().__init__(f"{code}: {message_en}")
        self.code = code
        self.message_en = message_en
        self.message_fr = message_fr


class Packager(Protocol):
    async def package(self, cut: Cut, records: Sequence[ReceivedRecord]) -> NewArchive:
        """The archive of ``cut``: its mail built from the room's decrypted messages of
        the range (attachments fetched, authors and patient resolved)."""
        ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """The SMTP server's answer to the end of DATA; ``refused``: the recipients it
    refused for good while accepting the others (address -> its reply)."""

    code: str
    reply: str
    refused: Mapping[str, str] = field(default_factory=dict)


class MailError(Exception):
    """A send or a mailbox read failed. ``permanent``: the same mail will be refused
    again (a 5xx); otherwise it is retried. ``code`` is stable; the messages say what
    to do in English and French; ``reply`` is the server's answer (never content)."""

    def __init__(
        self, code: str, *, permanent: bool, reply: str, message_en: str, message_fr: str
    ) -> None:
        super().__init__(f"{code}: {message_en}")
        self.code = code
        self.permanent = permanent
        self.reply = reply
        self.message_en = message_en
        self.message_fr = message_fr


@dataclass(frozen=True, slots=True)
class ReceiptSeen:
    """A receipt read in the archiver's mailbox: which archive it answers (its
    Message-ID) and the outcome: ``integrated``, ``rejected`` (code 900-906) or
    ``failed`` (a bounce)."""

    uid: int
    original_message_id: str
    outcome: str
    code: int | None
    text: str


@dataclass(frozen=True, slots=True)
class ReceiptBatch:
    uidvalidity: int
    last_uid: int
    receipts: list[ReceiptSeen] = field(default_factory=list)
    more: bool = False


class Delivery(Protocol):
    def describe(self) -> str:
        """Where mail goes, for the traces (``smtp mx.example:587``)."""
        ...

    def send(self, mail: bytes, *, sender: str, recipients: Sequence[str]) -> Accepted:
        """Send the mail once; raises MailError. Blocking (run in a thread)."""
        ...

    def receipts(self, *, after_uid: int) -> ReceiptBatch:
        """Receipts that arrived after ``after_uid``; raises MailError."""
        ...
