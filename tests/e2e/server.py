"""Start and stop real Relais server processes for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from server.processes import SERVER_COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def production_env(**overrides: str) -> dict[str, str]:
    """Production settings (DEBUG off) on the test database and the test Redis, for a
    server process started by a test; call it inside a test using the database."""
    from django.db import connection

    from keylog.keys import key_file

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
        # The log key this test process uses too (the development seed file), so tests
        # can play the operator holding it.
        "RELAIS_KEYLOG_KEY_FILE": str(key_file()),
        # Every client of a test run comes from 127.0.0.1 and the run's server processes
        # share one rate-limit cache: per-address budgets of the log's public read would
        # run out across tests (its own tests set their limits).
        "RELAIS_RATE_KEYLOG_IP": "100000/minute",
        "RELAIS_RATE_KEYLOG_LOOKUP_DEVICE": "100000/minute",
        # Likewise the per-address login and anonymous budgets, which dozens of logins
        # a minute from 127.0.0.1 would spend (tests of the limits set their own).
        "RELAIS_RATE_LOGIN_IP": "6000/minute",
        "RELAIS_RATE_ANON": "6000/minute",
        **overrides,
    }


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Return once something accepts connections on ``port``; fail if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling for the port to open; nothing to wait on
    raise TimeoutError(f"nothing listens on port {port}")


class ServerProcess:
    """One server process serving ``server.asgi`` with the given environment: uvicorn as
    in production (``server.processes``), or Daphne."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        log_path: Path,
        port: int | None = None,
        kind: str = "uvicorn",
    ) -> None:
        self.port = port or free_port()
        self.kind = kind
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1/"

    def start(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            SERVER_COMMANDS[self.kind](host="127.0.0.1", port=self.port),
            cwd=ROOT,
            env={**clean, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=5) as response:
                    body: dict[str, Any] = json.loads(response.read())
                    return body
            except OSError:  # not listening yet, or a first answer slower than the timeout
                time.sleep(0.05)  # polling for the port to open; nothing to wait on
        raise TimeoutError(f"server not healthy: {self.log_path.read_text()[-2000:]}")

    def kill_hard(self) -> None:
        """SIGKILL: no shutdown code runs, like a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
