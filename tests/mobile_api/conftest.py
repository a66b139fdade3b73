"""Real server processes for the API tests that need them (shared rate limits, the
schema-driven run): production settings on the test database and the test Redis."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.e2e.server import ServerProcess

# What nginx adds in production (deploy/nginx/relais.conf); uvicorn trusts it from
# 127.0.0.1, so a test picks the client address the application sees.
BEHIND_NGINX = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def api_server_env(transactional_db: None) -> dict[str, str]:
    database = connection.settings_dict
    return {
        "RELAIS_DEBUG": "0",
        "RELAIS_SECRET_KEY": "api-tests-" + "s" * 60,
        "RELAIS_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "RELAIS_DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}"
            f"/{database['NAME']}"
        ),
        "RELAIS_REDIS_URL": os.environ["RELAIS_REDIS_URL"],
        "RELAIS_REDIS_PREFIX": os.environ["RELAIS_REDIS_PREFIX"],
        "RELAIS_DB_CONN_MAX_AGE": "0",
        "RELAIS_LOG_LEVEL": "WARNING",
    }


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
