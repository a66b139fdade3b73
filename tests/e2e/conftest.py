from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess, production_env


@pytest.fixture
def server_env(transactional_db: None) -> dict[str, str]:
    """Production-like settings on the test database and the test Redis."""
    return production_env()


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
