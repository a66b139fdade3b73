"""The retention rule, applied by ``manage.py purge_attachments`` (docs/attachments.md).

1. An upload idle for ``upload_ttl_seconds`` is deleted with its parts.
2. A complete blob that no stored message carries — never sent, or its message was
   purged — is deleted once ``unsent_grace_seconds`` have passed since it completed.
3. With ``retention_days`` > 0, a blob older than that is deleted even if its message is
   still stored (the message then shows an expired attachment).
4. Objects under ``partial/`` whose upload no longer exists (a crash between writing an
   object and recording it) are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef

from attachments.conf import attachment_settings
from attachments.models import Attachment, AttachmentState
from attachments.services import do_delete_attachment
from attachments.storage import attachment_storage, delete_prefix
from chat.models import Envelope


@dataclass(frozen=True, slots=True)
class PurgeReport:
    stale_uploads: int
    unsent: int
    expired: int
    orphan_prefixes: int
    freed_bytes: int


def _purge(queryset: list[Attachment]) -> tuple[int, int]:
    freed = 0
    for attachment in queryset:
        freed += attachment.size
        do_delete_attachment(attachment)
    return len(queryset), freed


def purge_attachments(*, now: datetime) -> PurgeReport:
    """Apply the retention rule as of ``now``; safe to run concurrently with uploads."""
    limits = attachment_settings()
    stale, freed_stale = _purge(
        list(
            Attachment.objects.filter(
                state=AttachmentState.UPLOADING,
                updated_at__lt=now - timedelta(seconds=limits.upload_ttl_seconds),
            )
        )
    )
    carried = Envelope.objects.filter(
        room_id=OuterRef("room_id"),
        sender_device_id=OuterRef("uploader_device_id"),
        client_id=OuterRef("message_id"),
    )
    unsent, freed_unsent = _purge(
        list(
            Attachment.objects.filter(
                state=AttachmentState.COMPLETE,
                completed_at__lt=now - timedelta(seconds=limits.unsent_grace_seconds),
            )
            .annotate(carried=Exists(carried))
            .filter(carried=False)
        )
    )
    expired, freed_expired = 0, 0
    if limits.retention_days > 0:
        expired, freed_expired = _purge(
            list(
                Attachment.objects.filter(
                    state=AttachmentState.COMPLETE,
                    completed_at__lt=now - timedelta(days=limits.retention_days),
                )
            )
        )
    orphans = _purge_orphan_prefixes()
    return PurgeReport(
        stale_uploads=stale,
        unsent=unsent,
        expired=expired,
        orphan_prefixes=orphans,
        freed_bytes=freed_stale + freed_unsent + freed_expired,
    )


def _purge_orphan_prefixes() -> int:
    storage = attachment_storage()
    try:
        prefixes, _ = storage.listdir("partial")
    except FileNotFoundError:
        return 0
    uploading = set(
        Attachment.objects.filter(pk__in=prefixes, state=AttachmentState.UPLOADING).values_list(
            "pk", flat=True
        )
    )
    orphans = [prefix for prefix in prefixes if prefix not in uploading]
    for prefix in orphans:
        delete_prefix(f"partial/{prefix}")
    return len(orphans)
