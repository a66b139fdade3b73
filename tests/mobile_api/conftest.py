"""Real server processes for the API tests that need them (shared rate limits, the
schema-driven run): production settings on the test database and the test Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess, production_env

# What nginx adds in production (deploy/nginx/relais.conf); uvicorn trusts it from
# 127.0.0.1, so a test picks the client address the application sees.
BEHIND_NGINX = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def api_server_env(transactional_db: None) -> dict[str, str]:
    return production_env(RELAIS_SECRET_KEY="api-tests-" + "s" * 60, RELAIS_LOG_LEVEL="WARNING")


@pytest.fixture
def start_api_server(
    api_server_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(
            env={**api_server_env, **env}, log_path=tmp_path / f"server{len(started)}.log"
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
