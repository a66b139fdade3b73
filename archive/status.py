"""What the operator sees of the archiver (docs/archive.md, "Operator view"): per room,
archived up to which sequence number, what is pending, what failed and why, what the
receiving side integrated or rejected (with its code), and which recipients got the
last archive. Metadata only: no content, no patient, nothing sealed is opened."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from archive.outbox import ArchiveState, Outbox
from archive.outbox_recipients import RecipientRow, RecipientState


@dataclass(frozen=True, slots=True)
class RoomStatus:
    room: int
    kind: str
    archived_up_to: int | None
    received_up_to: int | None
    removed: bool
    pending: int = 0
    sent: int = 0
    integrated: int = 0
    rejected: int = 0
    failed: int = 0
    last_error_code: str = ""
    last_error: str = ""
    problems: list[str] = field(default_factory=list)
    # The room's last archive: each recipient and what became of it.
    recipients: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def room_statuses(outbox: Outbox) -> list[RoomStatus]:
    statuses = []
    for progress in outbox.all_progress():
        counts = dict.fromkeys(ArchiveState, 0)
        problems: list[str] = []
        last_code, last_error = "", ""
        for archive in outbox.archives(progress.room_id):
            counts[archive.state] += 1
            if archive.error_code:
                last_code, last_error = archive.error_code, archive.error
            if archive.state in (ArchiveState.FAILED, ArchiveState.REJECTED):
                problems.append(
                    f"archive {archive.id} (seq {archive.first_seq}-{archive.last_seq}) "
                    f"{archive.state.value} {archive.error_code}: {archive.error}".rstrip(": ")
                )
            elif archive.state is ArchiveState.PENDING and archive.error_code:
                problems.append(
                    f"archive {archive.id} (seq {archive.first_seq}-{archive.last_seq}) "
                    f"pending after {archive.attempts} attempts, {archive.error_code}: "
                    f"{archive.error}, next at {archive.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
                )
        archives = outbox.archives(progress.room_id)
        for archive in archives:
            problems.extend(
                f"archive {archive.id} (seq {archive.first_seq}-{archive.last_seq}) "
                f"recipient refused: {row.who}: {row.reply}"
                for row in outbox.recipients(archive.id)
                if row.state is RecipientState.REFUSED
            )
        last = outbox.recipients(archives[-1].id) if archives else []
        not_built = outbox.get_meta(f"package_error:{progress.room_id}")
        if not_built:
            problems.append(f"archive not built (retried every turn): {not_built}")
            last_code = last_code or not_built.split(":", 1)[0]
        statuses.append(
            RoomStatus(
                room=progress.room_id,
                kind=progress.kind,
                archived_up_to=progress.archived_up_to,
                received_up_to=progress.received_up_to,
                removed=progress.removed,
                pending=counts[ArchiveState.PENDING],
                sent=counts[ArchiveState.SENT],
                integrated=counts[ArchiveState.INTEGRATED],
                rejected=counts[ArchiveState.REJECTED],
                failed=counts[ArchiveState.FAILED],
                last_error_code=last_code,
                last_error=last_error,
                problems=problems,
                recipients=[_recipient_json(row) for row in last],
            )
        )
    return statuses


def _recipient_json(row: RecipientRow) -> dict[str, str]:
    return {
        "address": row.address,
        "national_id": row.national_id,
        "state": row.state.value,
        "code": row.code,
    }


def _recipient_line(recipient: dict[str, str]) -> str:
    who = recipient["address"] or f"member {recipient['national_id']}"
    if recipient["address"] and recipient["national_id"]:
        who += f" (member {recipient['national_id']})"
    code = f" {recipient['code']}" if recipient["code"] else ""
    return f"      -> {who}: {recipient['state']}{code}"


def status_lines(statuses: list[RoomStatus]) -> list[str]:
    if not statuses:
        return ["aucun salon archivé / no room archived yet"]
    lines = [
        "room  kind           archived-up-to  received-up-to  pending  sent  integrated  "
        "rejected  failed"
    ]
    for status in statuses:
        up_to = "-" if status.archived_up_to is None else str(status.archived_up_to)
        received = "-" if status.received_up_to is None else str(status.received_up_to)
        removed = "  (archiver removed)" if status.removed else ""
        lines.append(
            f"{status.room:<5} {status.kind:<14} {up_to:>14}  {received:>14}  "
            f"{status.pending:>7}  {status.sent:>4}  {status.integrated:>10}  "
            f"{status.rejected:>8}  {status.failed:>6}{removed}"
        )
        lines.extend(f"      !! {problem}" for problem in status.problems)
        if status.recipients:
            lines.append("      last archive's recipients / destinataires de la dernière archive:")
            lines.extend(_recipient_line(r) for r in status.recipients)
    return lines
