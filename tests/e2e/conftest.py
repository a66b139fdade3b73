from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ROOT, ServerProcess, production_env


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


@pytest.fixture(scope="session")
def embedded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database as ``make run`` sets it up (migrations, then the demo data),
    made once per test process; each test serves a copy of its own."""
    path = tmp_path_factory.mktemp("embedded") / "relais.sqlite3"
    env = {"RELAIS_DEBUG": "1", "RELAIS_DATABASE_URL": f"sqlite:///{path}"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**clean, **env},
            check=True,
            capture_output=True,
            timeout=120,
        )
    return path


@pytest.fixture
def embedded_server(embedded_database: Path, tmp_path: Path):
    database = tmp_path / "relais.sqlite3"
    shutil.copyfile(embedded_database, database)
    env = {"RELAIS_DEBUG": "1", "RELAIS_DATABASE_URL": f"sqlite:///{database}"}
    # Daphne, as ``make run`` (runserver) serves the embedded default.
    server = ServerProcess(env=env, log_path=tmp_path / "server.log", kind="daphne")
    server.start()
    yield server
    server.stop()
