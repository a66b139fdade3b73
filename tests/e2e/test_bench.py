"""The benchmark's pieces work: fixtures, the reference server, the load generator against
the reference and against a real Relais server process (tiny sizes, short windows).

The numbers themselves are the benchmark's business (``make bench``); here only that
every scenario runs and measures what it says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.e2e.server import ROOT, free_port, wait_for_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def fixtures(transactional_db, tmp_path: Path) -> Path:
    path = tmp_path / "fixtures.json"
    call_command("create_bench_fixtures", pairs=3, team_size=4, catchup=1200, output=str(path))
    return path


@pytest.fixture
def reference(fixtures: Path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.reference_server",
            "--fixtures",
            str(fixtures),
            "--port",
            str(port),
        ],
        cwd=ROOT,
    )
    wait_for_port(port, process)
    yield f"ws://127.0.0.1:{port}/ws/v1/"
    process.terminate()
    process.wait(timeout=10)


def loadgen(fixtures: Path, url: str, scenario: str, *extra: str) -> dict:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--fixtures",
            str(fixtures),
            "--url",
            url,
            "--scenario",
            scenario,
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--timeout",
            "10",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict = json.loads(completed.stdout)
    return result


@pytest.mark.parametrize("target", ["reference", "relais"])
def test_every_scenario_runs_and_measures(target, fixtures, reference, server_env, start_server):
    # With three rooms, each sender goes faster than a phone's frame budget allows.
    server_env.update({"RELAIS_WS_RATE_PER_SECOND": "100000", "RELAIS_WS_RATE_BURST": "100000"})
    url = reference if target == "reference" else start_server().ws_url
    pairs = loadgen(fixtures, url, "pairs")
    assert pairs["deliveries"] > 0
    assert pairs["errors"] == {}
    assert 0 < pairs["p50_ms"] <= pairs["p99_ms"]

    encrypted = loadgen(fixtures, url, "pairs", "--encrypt")  # every body verified, decrypted
    assert encrypted["deliveries"] > 0
    assert encrypted["errors"] == {}

    team = loadgen(fixtures, url, "team", "--senders", "2")
    assert team["deliveries"] > 0
    assert team["members"] == 4

    rate = loadgen(fixtures, url, "rate", "--rate", "30")
    assert rate["undelivered"] == 0
    assert rate["acks"] == rate["sent"] > 0

    catchup = loadgen(fixtures, url, "catchup", "--repeat", "2")
    assert catchup["messages"] == 1200  # the load generator checks order and completeness
    assert catchup["median_s"] > 0
