"""Start and stop real Relais server processes for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One Daphne process serving ``server.asgi`` with the given environment."""

    def __init__(self, *, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
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
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "server.asgi:application",
            ],
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
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=2) as response:
                    body: dict[str, Any] = json.loads(response.read())
                    return body
            except (urllib.error.URLError, ConnectionError):
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
