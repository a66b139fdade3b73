from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.e2e.server import ServerProcess


@pytest.fixture
def server_env(transactional_db: None) -> dict[str, str]:
    """Production-like settings on the test database and the test Redis."""
    database = connection.settings_dict
    return {
        "RELAIS_DEBUG": "0",
        "RELAIS_SECRET_KEY": "e2e-" + "s" * 60,
        "RELAIS_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "RELAIS_DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}"
            f"/{database['NAME']}"
        ),
        "RELAIS_REDIS_URL": os.environ["RELAIS_REDIS_URL"],
        "RELAIS_REDIS_PREFIX": os.environ["RELAIS_REDIS_PREFIX"],
        "RELAIS_DB_CONN_MAX_AGE": "0",
        "RELAIS_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def start_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    started: list[ServerProcess] = []

    def start(port: int | None = None) -> ServerProcess:
        server = ServerProcess(
            env=server_env, log_path=tmp_path / f"server{len(started)}.log", port=port
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
