"""Fixtures of the attachment tests: a private blob store with small limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SMALL_LIMITS = {
    "MAX_FILE_BYTES": 50_000,
    "QUOTA_BYTES": 120_000,
    "PART_BYTES": 16_384,
    "UPLOAD_TTL_SECONDS": 3600,
    "UNSENT_GRACE_SECONDS": 3600,
    "RETENTION_DAYS": 30,
}


@pytest.fixture
def blob_root(tmp_path: Path, settings: Any) -> Path:
    """Blobs go to a fresh directory; limits are small enough to reach in a test."""
    root = tmp_path / "attachments"
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    settings.RELAIS_ATTACHMENTS = dict(SMALL_LIMITS)
    return root


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []
