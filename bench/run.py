"""Run the message-path benchmark: Relais and the reference, side by side, in one run.

    make bench                       # or: python -m bench.run [--quick] [--servers ...]

1. Creates an empty benchmark database on PostgreSQL (``RELAIS_BENCH_DATABASE_URL``,
   default ``postgres://postgres@127.0.0.1:5432/relais_bench``, dropped and recreated),
   migrates it and writes the fixtures (``manage.py create_bench_fixtures``).
2. Starts every server under test: the reference (``bench.reference_server``) and Relais
   on its production path (DEBUG off, PostgreSQL, Redis fan-out) under Daphne and under
   uvicorn, each with ``--processes`` server processes.
3. For each round and scenario, runs the load generator (``bench.loadgen``, a process of
   its own) against each server in turn, so every comparison is made seconds apart.
4. Prints, per scenario, each server's median over the rounds and the median of its
   per-round ratios to the reference, and writes everything to
   ``var/bench/results-<time>.json``.

Absolute numbers drift on shared machines; the ratio to the reference, measured round by
round in the same run, is what docs/performance.md reports.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from server.processes import SERVER_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "var" / "bench"
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/relais_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
SCENARIOS = ("pairs", "pairs_encrypted", "team", "rate", "catchup")
SERVERS = ("reference", "daphne", "uvicorn")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _relais_env(database_url: str, redis_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    return {
        **clean,
        "RELAIS_DEBUG": "0",
        "RELAIS_SECRET_KEY": secrets.token_urlsafe(48),
        "RELAIS_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_REDIS_URL": redis_url,
        "RELAIS_REDIS_PREFIX": f"bench-{secrets.token_hex(4)}",
        "RELAIS_SECURE_SSL_REDIRECT": "0",
        "RELAIS_LOG_LEVEL": "WARNING",
    }


def recreate_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith("relais_bench"):
        raise SystemExit(f"refusing to drop {name!r}: the benchmark database must be relais_bench*")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def prepare(env: dict[str, str], fixtures: Path) -> None:
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [*manage, "create_bench_fixtures", "--output", str(fixtures)],
        cwd=ROOT,
        env=env,
        check=True,
    )


@dataclass
class Server:
    """One server under test: a name and its processes."""

    name: str
    commands: list[list[str]]
    env: dict[str, str]
    ports: list[int]
    health_path: str | None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}/ws/v1/" for port in self.ports]

    def start(self) -> None:
        for index, command in enumerate(self.commands):
            log = (OUTPUT / f"{self.name}-{index}.log").open("wb")
            self.processes.append(
                subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
            )
        for port in self.ports:
            self._wait_ready(port)

    def _wait_ready(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in self.processes):
                raise SystemExit(f"{self.name} exited; see {OUTPUT}/{self.name}-*.log")
            try:
                if self.health_path is None:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return
                url = f"http://127.0.0.1:{port}{self.health_path}"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)  # waiting for a port to open: nothing to wait on but time
        raise SystemExit(f"{self.name} did not become ready on port {port}")

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def build_servers(
    names: list[str], *, processes: int, env: dict[str, str], fixtures: Path
) -> list[Server]:
    servers = []
    for name in names:
        ports = [_free_port() for _ in range(processes if name != "reference" else 1)]
        if name == "reference":
            commands = [
                [
                    sys.executable,
                    "-m",
                    "bench.reference_server",
                    "--fixtures",
                    str(fixtures),
                    "--port",
                    str(ports[0]),
                ]
            ]
            servers.append(Server(name, commands, env, ports, health_path=None))
        else:
            command = SERVER_COMMANDS[name]
            commands = [command(host="127.0.0.1", port=port) for port in ports]
            servers.append(Server(name, commands, env, ports, health_path="/healthz"))
    return servers


def run_loadgen(
    server: Server, scenario: str, fixtures: Path, options: list[str]
) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.loadgen", "--fixtures", str(fixtures)]
    for url in server.urls:
        command += ["--url", url]
    # pairs_encrypted is the pairs scenario with --encrypt (in its options).
    command += ["--scenario", scenario.removesuffix("_encrypted"), *options]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return {"failed": completed.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _headline(scenario: str, result: dict[str, Any]) -> str:
    if "failed" in result:
        return f"FAILED {result['failed']}"
    if scenario == "catchup":
        return (
            f"{result['deliveries_per_s']:>9,.0f}/s  median {result['median_s'] * 1000:7.1f} ms"
            f"  max {result['max_s'] * 1000:7.1f} ms"
        )
    text = (
        f"{result['deliveries_per_s']:>9,.0f}/s  p50 {result['p50_ms']:6.1f} ms"
        f"  p99 {result['p99_ms']:6.1f} ms"
    )
    if result.get("errors"):
        text += f"  errors {result['errors']}"
    if result.get("undelivered"):
        text += f"  undelivered {result['undelivered']}"
    return text


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def summarise(rounds: list[dict[str, dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    """Per scenario and server: medians over the rounds, and the median per-round ratio."""
    summary: dict[str, Any] = {}
    for scenario in rounds[0]:
        summary[scenario] = {}
        for name in rounds[0][scenario]:
            results = [r[scenario][name] for r in rounds if "failed" not in r[scenario][name]]
            if not results:
                summary[scenario][name] = {"failed": rounds[-1][scenario][name]["failed"]}
                continue
            entry: dict[str, Any] = {"rounds": len(results)}
            for key in ("deliveries_per_s", "p50_ms", "p99_ms", "median_s", "max_s"):
                values = [r[key] for r in results if r.get(key) is not None]
                if values:
                    entry[key] = round(_median(values), 4)
            ratios = [
                r[scenario][name]["deliveries_per_s"] / r[scenario]["reference"]["deliveries_per_s"]
                for r in rounds
                if name != "reference"
                and "deliveries_per_s" in r[scenario][name]
                and "deliveries_per_s" in r[scenario].get("reference", {})
            ]
            if ratios:
                entry["ratio_to_reference"] = round(_median(ratios), 4)
                entry["ratios"] = [round(ratio, 4) for ratio in ratios]
            summary[scenario][name] = entry
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    for scenario, by_server in summary.items():
        print(f"\n{scenario} (medians over rounds)")
        for name, result in by_server.items():
            ratio = ""
            if "ratio_to_reference" in result:
                ratio = f"  {100 * result['ratio_to_reference']:5.1f} % of reference"
            print(f"  {name:<10} {_headline(scenario, result)}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--processes", type=int, default=1, help="Relais server processes")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of every scenario")
    parser.add_argument("--quick", action="store_true", help="3-second windows (a smoke run)")
    args = parser.parse_args()
    duration = 3.0 if args.quick else args.duration

    OUTPUT.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("RELAIS_BENCH_DATABASE_URL", DEFAULT_DATABASE)
    redis_url = os.environ.get("RELAIS_BENCH_REDIS_URL", DEFAULT_REDIS)
    env = _relais_env(database_url, redis_url)
    fixtures = OUTPUT / "fixtures.json"
    print(f"preparing {urlsplit(database_url).path.lstrip('/')} ...", flush=True)
    recreate_database(database_url)
    prepare(env, fixtures)

    servers = build_servers(args.servers, processes=args.processes, env=env, fixtures=fixtures)
    options = {
        "pairs": ["--duration", str(duration)],
        "pairs_encrypted": ["--duration", str(duration), "--encrypt"],
        "team": ["--duration", str(duration)],
        "rate": ["--duration", str(duration)],
        "catchup": [],
    }
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = []
    try:
        for server in servers:
            server.start()
        for number in range(1, args.rounds + 1):
            results: dict[str, dict[str, dict[str, Any]]] = {}
            for scenario in args.scenarios:
                results[scenario] = {}
                for server in servers:
                    print(f"round {number} {scenario:<8} {server.name:<10}", end=" ", flush=True)
                    result = run_loadgen(server, scenario, fixtures, options[scenario])
                    results[scenario][server.name] = result
                    print(_headline(scenario, result), flush=True)
            rounds.append(results)
    finally:
        for server in servers:
            server.stop()
    summary = summarise(rounds)
    print_summary(summary)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = OUTPUT / f"results-{stamp}.json"
    meta = {
        "processes": args.processes,
        "duration": duration,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    path.write_text(json.dumps({"meta": meta, "summary": summary, "rounds": rounds}, indent=1))
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
