"""Recording an archiver's report. Deny by default: only an archiver device may report,
and only about rooms whose state names that very device (``Room.archiver_device``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from archiving.models import ArchiveRoomStatus
from chat.errors import ErrorCode, RelaisError
from chat.models import Device, DeviceKind, Room

MAX_ROOMS = 500


@dataclass(frozen=True, slots=True)
class RoomReport:
    room: int
    archived_up_to: int | None
    received_up_to: int | None
    pending: int
    sent: int
    integrated: int
    rejected: int
    failed: int
    last_error_code: str
    recipients_accepted: int = 0
    recipients_refused: int = 0
    members_not_sent: int = 0


def do_report_status(*, device_id: int, reports: list[RoomReport]) -> int:
    """Store the reports (all or nothing); how many rooms. ``not_found`` for a device
    that is not an unrevoked archiver, ``not_member`` when a room does not name it."""
    if len(reports) > MAX_ROOMS:
        raise RelaisError(ErrorCode.BAD_REQUEST, f"At most {MAX_ROOMS} rooms per report.")
    if not Device.objects.filter(
        pk=device_id, kind=DeviceKind.ARCHIVER, revoked_at__isnull=True
    ).exists():
        raise RelaisError(ErrorCode.NOT_FOUND)
    rooms = {report.room for report in reports}
    named = set(
        Room.objects.filter(pk__in=rooms, archiver_device_id=device_id).values_list("pk", flat=True)
    )
    if named != rooms:
        raise RelaisError(ErrorCode.NOT_MEMBER)
    now = timezone.now()
    with transaction.atomic():
        for report in reports:
            ArchiveRoomStatus.objects.update_or_create(
                room_id=report.room,
                archiver_device_id=device_id,
                defaults={
                    "archived_up_to": report.archived_up_to,
                    "received_up_to": report.received_up_to,
                    "pending": report.pending,
                    "sent": report.sent,
                    "integrated": report.integrated,
                    "rejected": report.rejected,
                    "failed": report.failed,
                    "last_error_code": report.last_error_code,
                    "recipients_accepted": report.recipients_accepted,
                    "recipients_refused": report.recipients_refused,
                    "members_not_sent": report.members_not_sent,
                    "reported_at": now,
                },
            )
    return len(reports)
