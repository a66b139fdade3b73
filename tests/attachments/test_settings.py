"""The attachment storage settings: filesystem by default, S3 as an option, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "from django.conf import settings; s = settings.STORAGES['attachments']; "
    "print(s['BACKEND']); print(sorted(s['OPTIONS'].items()))"
)


def run_shell(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=ROOT,
        env={**clean, "RELAIS_DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_filesystem_storage_is_the_default_with_private_files():
    result = run_shell({})
    assert result.returncode == 0, result.stderr
    assert "django.core.files.storage.FileSystemStorage" in result.stdout
    assert "('file_permissions_mode', 384)" in result.stdout  # 0o600
    assert str(ROOT / "var" / "attachments") in result.stdout


def test_s3_storage_is_configured_from_the_environment():
    result = run_shell(
        {
            "RELAIS_ATTACHMENT_STORAGE": "s3",
            "RELAIS_ATTACHMENT_S3_BUCKET": "relais-blobs",
            "RELAIS_ATTACHMENT_S3_ENDPOINT_URL": "https://s3.example.test",
        }
    )
    assert result.returncode == 0, result.stderr
    assert "storages.backends.s3.S3Storage" in result.stdout
    assert "('bucket_name', 'relais-blobs')" in result.stdout
    assert "('default_acl', 'private')" in result.stdout
    assert "('endpoint_url', 'https://s3.example.test')" in result.stdout


def test_misconfigured_storage_stops_the_start_naming_the_variable():
    no_bucket = run_shell({"RELAIS_ATTACHMENT_STORAGE": "s3"})
    assert no_bucket.returncode != 0
    assert "RELAIS_ATTACHMENT_S3_BUCKET" in no_bucket.stderr
    unknown = run_shell({"RELAIS_ATTACHMENT_STORAGE": "ftp"})
    assert unknown.returncode != 0
    assert "RELAIS_ATTACHMENT_STORAGE" in unknown.stderr
