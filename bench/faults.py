"""Faults on demand: a PostgreSQL and a Redis of our own, stopped and started at will,
and Relais server processes on them, as deployed (uvicorn, DEBUG off).

Used by the fault tests (``tests/e2e/test_faults.py``: outages of a few seconds, part of
``make test``) and by the outage benchmark (``bench/outages.py``: 30-second outages and
the recovery times). Nothing here touches the machine's shared PostgreSQL or Redis: both
instances live in a temporary directory, listen on free ports of the loopback interface
and are removed at the end. PostgreSQL refuses to run as root, so under root its
commands run as the ``postgres`` user of the Debian package (``runuser``).
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from keylog.keys import write_seed_file
from server.processes import uvicorn_command

ROOT = Path(__file__).resolve().parents[1]
_POSTGRES_USER = "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _postgres_binary(name: str) -> str:
    """``name`` from the newest PostgreSQL of the Debian package, else from PATH."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(f"{name} not found: install the postgresql package")
    return on_path


def _wait_until(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)  # polling a port or a process: nothing to wait on but time
    raise TimeoutError(f"{what} within {timeout} s")


class PrivatePostgres:
    """A PostgreSQL cluster of our own in ``root``, on a free port."""

    def __init__(self, root: Path) -> None:
        self.root = root / "postgres"
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _command(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", _POSTGRES_USER, "--", *args]
        return list(args)

    def _run(self, *args: str) -> None:
        subprocess.run(self._command(*args), check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            # The postgres user must reach its directory (the parent is private).
            self.root.parent.chmod(0o711)
            shutil.chown(self.root, _POSTGRES_USER, _POSTGRES_USER)
        self._run(
            _postgres_binary("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        # fsync off: the faults here kill processes, not the machine, and the page cache
        # survives a killed PostgreSQL; the shared CI disks are spared.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c fsync=off -c full_page_writes=off"
        )
        self._run(
            _postgres_binary("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        """Stop at once, as a crash would (``immediate``: no checkpoint, no goodbye)."""
        self._run(_postgres_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            self._command(_postgres_binary("pg_ctl"), "-D", str(self.data), "status"),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop()


class PrivateRedis:
    """A Redis of our own on a free port, without persistence."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ]
        )
        _wait_until(self._answers, timeout=20, what="Redis did not answer")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill it (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def destroy(self) -> None:
        self.stop()


class RelaisProcess:
    """One Relais server process (uvicorn, as deployed) with the given environment."""

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1/"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                uvicorn_command(host="127.0.0.1", port=self.port),
                cwd=ROOT,
                env={**clean, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_until(lambda: self.health()[0] == 200, timeout=60, what="Relais was not healthy")

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: the status code and the body (0 and {} when nothing answers)."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except (urllib.error.URLError, OSError):
            return 0, {}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class FaultLab:
    """A private PostgreSQL and Redis, a migrated database with fixtures, and
    ``processes`` Relais server processes; ``close()`` removes everything."""

    def __init__(self, *, processes: int = 2, pairs: int = 10, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="relais-faults-"))
        self.postgres = PrivatePostgres(self.root)
        self.redis = PrivateRedis(self.root)
        self.servers: list[RelaisProcess] = []
        self.process_count = processes
        self.pairs = pairs
        self.fixtures: dict[str, Any] = {}
        self.database_url = ""

    def env(self) -> dict[str, str]:
        return {
            "RELAIS_DEBUG": "0",
            "RELAIS_SECRET_KEY": secrets.token_urlsafe(48),
            "RELAIS_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "RELAIS_DATABASE_URL": self.database_url,
            "RELAIS_REDIS_URL": self.redis.url,
            "RELAIS_REDIS_PREFIX": f"faults-{secrets.token_hex(4)}",
            "RELAIS_LOG_LEVEL": "INFO",
            "RELAIS_KEYLOG_KEY_FILE": str(self.root / "keylog.key"),
        }

    def start(self) -> None:
        write_seed_file(self.root / "keylog.key")
        self.postgres.init()
        self.postgres.start()
        self.database_url = self.postgres.create_database("relais")
        self.redis.start()
        env = self.env()
        manage = [sys.executable, "manage.py"]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        fixtures = self.root / "fixtures.json"
        for command in (
            ["migrate", "--noinput", "-v", "0"],
            [
                "create_bench_fixtures",
                "--pairs",
                str(self.pairs),
                "--team-size",
                "2",
                "--catchup",
                "0",
                "--output",
                str(fixtures),
            ],
        ):
            subprocess.run(
                [*manage, *command], cwd=ROOT, env={**clean, **env}, check=True, timeout=120
            )
        self.fixtures = json.loads(fixtures.read_text())
        for index in range(self.process_count):
            server = RelaisProcess(env=env, log_path=self.root / f"relais-{index}.log")
            server.start()
            self.servers.append(server)

    def log_lines(self) -> list[str]:
        """Every line the server processes logged so far."""
        lines: list[str] = []
        for server in self.servers:
            lines.extend(server.log_path.read_text(errors="replace").splitlines())
        return lines

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.redis.destroy()
        self.postgres.destroy()
        shutil.rmtree(self.root, ignore_errors=True)
