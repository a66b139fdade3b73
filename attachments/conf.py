"""The ``RELAIS_ATTACHMENTS`` settings namespace, read lazily so tests can override it.

Every value comes from a ``RELAIS_ATTACHMENT_*`` environment variable (server/settings.py,
docs/configuration.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True)
class AttachmentSettings:
    max_file_bytes: int  # largest blob (ciphertext) accepted
    quota_bytes: int  # per practitioner: every blob they uploaded and still stored
    part_bytes: int  # size of every upload part but the last
    upload_ttl_seconds: int  # an upload idle this long is purged
    unsent_grace_seconds: int  # a complete blob no stored message carries is purged after
    retention_days: int  # blobs older than this are purged; 0 keeps them with their message


@cache
def attachment_settings() -> AttachmentSettings:
    raw: dict[str, Any] = settings.RELAIS_ATTACHMENTS
    return AttachmentSettings(**{key.lower(): value for key, value in raw.items()})


@receiver(setting_changed)
def _forget_cached_settings(*, setting: str, **_: Any) -> None:
    if setting == "RELAIS_ATTACHMENTS":
        attachment_settings.cache_clear()
