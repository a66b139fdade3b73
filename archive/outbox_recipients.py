"""Each archive's recipients in the outbox (docs/archive.md, "Recipients"): which
address got the mail (the SMTP server accepted it), which the server refused (its
reply), and which member got no copy and why. One row per recipient, in the outbox's
own transactions (``archive.outbox``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

SCHEMA = """
CREATE TABLE IF NOT EXISTS recipients (
    archive_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    national_id TEXT NOT NULL,
    state TEXT NOT NULL,
    code TEXT NOT NULL DEFAULT '',
    reply TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (archive_id, national_id, address)
);
"""
MAX_REPLY = 500


class RecipientState(StrEnum):
    PENDING = "pending"  # not accepted by the SMTP server yet
    ACCEPTED = "accepted"  # the SMTP server took the mail for this address
    REFUSED = "refused"  # the SMTP server refused this address for good (a 5xx at RCPT)
    NOT_SENT = "not_sent"  # a member without a usable address: ``code`` says why


@dataclass(frozen=True, slots=True)
class RecipientRow:
    """``address`` is empty for a member who got no copy; ``national_id`` is empty for
    the organisation's mailbox."""

    address: str
    national_id: str
    state: RecipientState
    code: str
    reply: str

    @property
    def who(self) -> str:
        if not self.address:
            return f"member {self.national_id}"
        return f"{self.address} ({self.national_id})" if self.national_id else self.address


def insert(
    db: sqlite3.Connection,
    archive_id: int,
    addresses: tuple[str, ...],
    members: Mapping[str, str],
    skipped: tuple[tuple[str, str], ...],
) -> None:
    for address in addresses:
        db.execute(
            "INSERT OR IGNORE INTO recipients (archive_id, address, national_id, state) "
            "VALUES (?, ?, ?, ?)",
            (archive_id, address, members.get(address.lower(), ""), RecipientState.PENDING),
        )
    for national_id, reason in skipped:
        db.execute(
            "INSERT OR IGNORE INTO recipients (archive_id, address, national_id, state, code) "
            "VALUES (?, '', ?, ?, ?)",
            (archive_id, national_id, RecipientState.NOT_SENT, reason),
        )


def mark_sent(db: sqlite3.Connection, archive_id: int, refused: Mapping[str, str]) -> None:
    """The SMTP server accepted the mail: every pending address is accepted, except the
    ones it refused (address -> its reply, ``550 5.1.1 …``)."""
    rows = db.execute(
        "SELECT address FROM recipients WHERE archive_id = ? AND state IN (?, ?, ?)",
        (
            archive_id,
            RecipientState.PENDING,
            RecipientState.ACCEPTED,
            RecipientState.REFUSED,
        ),
    ).fetchall()
    by_lower = {address.lower(): reply for address, reply in refused.items()}
    for row in rows:
        address = str(row[0])
        reply = by_lower.get(address.lower())
        if reply is None:
            state, code = RecipientState.ACCEPTED, ""
        else:
            state, code = RecipientState.REFUSED, reply.split(" ", 1)[0]
        db.execute(
            "UPDATE recipients SET state = ?, code = ?, reply = ? "
            "WHERE archive_id = ? AND address = ? AND state != ?",
            (state, code, (reply or "")[:MAX_REPLY], archive_id, address, RecipientState.NOT_SENT),
        )


def of_archive(db: sqlite3.Connection, archive_id: int) -> list[RecipientRow]:
    rows = db.execute(
        "SELECT address, national_id, state, code, reply FROM recipients "
        "WHERE archive_id = ? ORDER BY national_id != '', national_id, address",
        (archive_id,),
    ).fetchall()
    return [
        RecipientRow(
            address=row[0],
            national_id=row[1],
            state=RecipientState(row[2]),
            code=row[3],
            reply=row[4],
        )
        for row in rows
    ]


def mark_failed(db: sqlite3.Connection, archive_id: int, code: str, reply: str) -> None:
    """The SMTP server refused the mail for good: nobody pending got it."""
    db.execute(
        "UPDATE recipients SET state = ?, code = ?, reply = ? WHERE archive_id = ? AND state = ?",
        (RecipientState.REFUSED, code, reply[:MAX_REPLY], archive_id, RecipientState.PENDING),
    )
