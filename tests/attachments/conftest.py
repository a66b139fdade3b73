"""Fixtures of the attachment tests: a private blob store with small limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The real-server fixture of tests/e2e, shared here.
from tests.e2e.conftest import server_env  # noqa: F401
from tests.e2e.server import ServerProcess

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


SERVER_LIMITS = {
    "RELAIS_SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback; nginx does TLS in production
    "RELAIS_ATTACHMENT_MAX_BYTES": str(3 * 1024 * 1024),
    "RELAIS_ATTACHMENT_QUOTA_BYTES": str(6 * 1024 * 1024),
    "RELAIS_ATTACHMENT_PART_BYTES": str(256 * 1024),
}


class AttachmentServer:
    """Real server processes sharing one blob store; restartable on the same port."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.store = Path(env["RELAIS_ATTACHMENT_ROOT"])
        self.processes: list[ServerProcess] = []

    @property
    def current(self) -> ServerProcess:
        return self.processes[-1]

    def start(self, port: int | None = None) -> ServerProcess:
        process = ServerProcess(
            env=self.env, log_path=self.log_dir / f"server{len(self.processes)}.log", port=port
        )
        process.start()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def attachment_server(
    server_env: dict[str, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> Iterator[AttachmentServer]:
    env = {**server_env, **SERVER_LIMITS, "RELAIS_ATTACHMENT_ROOT": str(tmp_path / "store")}
    server = AttachmentServer(env, tmp_path)
    server.start()
    yield server
    server.stop_all()
