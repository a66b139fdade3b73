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
def server(
    request: pytest.FixtureRequest,
    server_env: dict[str, str],
    practitioners: object,
    tmp_path: Path,
) -> Iterator[ServerProcess]:
    """A server process with the development login on (production settings otherwise):
    the test worker's shared one (``shared_server``), or, for a test marked
    ``own_server`` because it stops, kills or restarts its server, a process of its own
    with the same settings."""
    if request.node.get_closest_marker("own_server") is None:
        shared: ServerProcess = request.getfixturevalue("shared_server")
        shared.wait_healthy()  # an earlier test cannot have left it down unnoticed
        yield shared
        return
    process = ServerProcess(
        env={**server_env, "RELAIS_DEBUG": "1"}, log_path=tmp_path / "server.log"
    )
    process.start()
    yield process
    process.stop()


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
