"""The web client's bundles for the browser tests: built once per test run (npm run
build: esbuild, about a second), under a lock so that parallel test processes do not
build over each other."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SHIPPED = ROOT / "webapp" / "static" / "webapp" / "dist"
TEST_BUNDLES = WEB / "build-tests"
CHROMIUM = os.environ.get("RELAIS_TEST_CHROMIUM", "/usr/bin/chromium")


def ensure_built() -> None:
    """Build the app if this run has not yet; fail with what to install otherwise."""
    if shutil.which("npm") is None:
        raise RuntimeError("the web tests need Node.js and npm: apt-get install nodejs npm")
    if not (WEB / "node_modules").is_dir():
        raise RuntimeError("web/node_modules is missing: run `make test` (it runs npm ci)")
    marker = TEST_BUNDLES / f".built-by-{os.getppid()}"
    TEST_BUNDLES.mkdir(exist_ok=True)
    with (TEST_BUNDLES / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and (SHIPPED / "main.js").exists():
            return
        subprocess.run(["npm", "run", "--silent", "build"], cwd=WEB, check=True)
        for old in TEST_BUNDLES.glob(".built-by-*"):
            old.unlink()
        marker.touch()
