"""``manage.py archive_status``: what each archiver reported of its rooms (metadata)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from archiving.models import ArchiveRoomStatus


class Command(BaseCommand):
    help = "Per room: archived up to, pending, failed and the last error code, as reported."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = ArchiveRoomStatus.objects.order_by("room_id", "archiver_device_id")
        if not rows.exists():
            self.stdout.write("no archiver has reported yet")
            return
        self.stdout.write(
            "room  archiver  archived-up-to  received-up-to  pending  sent  integrated  "
            "rejected  failed  last-error  recipients(ok/refused/no-address)  reported-at"
        )
        for row in rows:
            self.stdout.write(
                f"{row.room_id:<5} {row.archiver_device_id:<9} "
                f"{_number(row.archived_up_to):>14}  {_number(row.received_up_to):>14}  "
                f"{row.pending:>7}  {row.sent:>4}  {row.integrated:>10}  {row.rejected:>8}  "
                f"{row.failed:>6}  {row.last_error_code or '-':<10}  "
                f"{_recipients(row):<35}  "
                f"{row.reported_at:%Y-%m-%d %H:%M:%S}"
            )


def _recipients(row: ArchiveRoomStatus) -> str:
    return f"{row.recipients_accepted}/{row.recipients_refused}/{row.members_not_sent}"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)
