"""Shared fixtures. The suite runs on PostgreSQL and Redis (see the Makefile)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.test import override_settings

from chat.clock import ManualClock
from chat.runtime import Runtime, close_runtime, start_runtime
from chat.services.devices import do_issue_device_token
from directory.demo import ensure_demo_practitioners
from directory.models import Practitioner
from tests.e2e.server import ServerProcess, production_env

# Each test run uses its own Redis channel names, so runs never hear each other; under
# pytest-xdist (make test), each worker too: workers have databases of their own, where
# the same room ids mean other rooms.
os.environ.setdefault("RELAIS_REDIS_PREFIX", f"test-{uuid.uuid4().hex[:8]}")
if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ["RELAIS_REDIS_PREFIX"].endswith(
    os.environ["PYTEST_XDIST_WORKER"]
):
    os.environ["RELAIS_REDIS_PREFIX"] += "-" + os.environ["PYTEST_XDIST_WORKER"]


@pytest.fixture(autouse=True)
def _isolated_redis_prefix(settings: Any) -> None:
    settings.RELAIS = {**settings.RELAIS, "REDIS_PREFIX": os.environ["RELAIS_REDIS_PREFIX"]}


@pytest.fixture(autouse=True)
def _fresh_rest_throttles(settings: Any) -> None:
    """REST throttles count in the cache; each test starts with a clean budget under a
    key prefix of its own. (Clearing the cache instead would flush the whole Redis
    database, which other test runs share.)"""
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"{os.environ['RELAIS_REDIS_PREFIX']}-{uuid.uuid4().hex[:8]}"
    settings.CACHES = caches


@pytest.fixture(params=["memory", "redis"])
def fanout_mode(request: pytest.FixtureRequest, settings: Any) -> str:
    """Run a test with in-process fan-out and again through the real Redis."""
    mode: str = request.param
    redis_url = os.environ.get("RELAIS_REDIS_URL", "")
    if mode == "redis" and not redis_url:
        pytest.fail("RELAIS_REDIS_URL must point to a Redis server (make test sets it)")
    settings.RELAIS = {**settings.RELAIS, "REDIS_URL": redis_url if mode == "redis" else ""}
    return mode


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def runtime(clock: ManualClock) -> AsyncIterator[Runtime]:
    started = await start_runtime(clock=clock)
    yield started
    try:
        async with asyncio.timeout(20):
            await close_runtime()
    except TimeoutError:
        # Say where the shutdown is stuck instead of hanging until the test timeout.
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)
        raise


@pytest.fixture
def practitioners(transactional_db: None) -> dict[str, Practitioner]:
    nurse, doctor, pharmacist, physio = ensure_demo_practitioners()
    return {"nurse": nurse, "doctor": doctor, "pharmacist": pharmacist, "physio": physio}


@pytest.fixture
def device_token() -> Any:
    def issue(practitioner: Practitioner, name: str = "phone") -> tuple[int, str]:
        device, token = do_issue_device_token(practitioner=practitioner, device_name=name)
        return device.pk, token

    return issue


@pytest.fixture
def small_limits(settings: Any) -> Iterator[None]:
    with override_settings(
        RELAIS={
            **settings.RELAIS,
            "RATE_PER_SECOND": 5,
            "RATE_BURST": 5,
            "FLOOD_ERRORS_BEFORE_CLOSE": 3,
            "OUTBOUND_QUEUE_LIMIT": 5,
            "BACKLOG_PAGE": 3,
        }
    ):
        yield


@pytest.fixture(scope="session")
def shared_server(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One real server process per test worker (development login on, production
    settings otherwise), shared by the end-to-end tests that never stop, restart or
    reconfigure their server (``server`` in tests/e2e/conftest.py). It runs on the
    worker's test database, so it sees what each test writes; it keeps no state of its
    own between tests that the flush after each test would leave stale. Stopped before
    the test database is dropped (it depends on ``django_db_setup``)."""
    process = ServerProcess(
        env=production_env(RELAIS_DEBUG="1"),
        log_path=tmp_path_factory.mktemp("shared-server") / "server.log",
    )
    process.start()
    yield process
    process.stop()
