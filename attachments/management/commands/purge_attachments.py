"""``manage.py purge_attachments``: apply the attachment retention rule now.

Run it periodically (the systemd timer in deploy/ runs it hourly); see
docs/attachments.md for the rule.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from attachments.purge import purge_attachments


class Command(BaseCommand):
    help = "Delete stale uploads, unsent and expired attachment blobs."

    def handle(self, *args: Any, **options: Any) -> None:
        report = purge_attachments(now=timezone.now())
        self.stdout.write(
            f"stale uploads: {report.stale_uploads}, unsent: {report.unsent}, "
            f"expired: {report.expired}, orphan part folders: {report.orphan_prefixes}, "
            f"freed: {report.freed_bytes} bytes"
        )
