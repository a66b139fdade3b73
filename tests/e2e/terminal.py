"""``python -m client chat`` in a subprocess, driven through its stdin and stdout, as a
person at a terminal would use it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.e2e.server import ROOT, ServerProcess


class Terminal:
    """One CLI process. ``lines`` holds everything it printed so far (as read)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(
        cls, server: ServerProcess, home: Path, me: str, peer: str, *options: str
    ) -> Terminal:
        """``python -m client chat --as me --with peer``."""
        return await cls.command(server, home, "chat", "--as", me, "--with", peer, *options)

    @classmethod
    async def command(cls, server: ServerProcess, home: Path, *arguments: str) -> Terminal:
        """``python -m client <arguments> --server <the server>``."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "client",
            *arguments,
            "--server",
            server.http_url,
            cwd=ROOT,
            env={**clean, "RELAIS_HOME": str(home), "RELAIS_PASSPHRASE": "demo passphrase"},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    async def wait_for(self, fragment: str) -> str:
        """The next line containing ``fragment`` (lines before it are kept in ``lines``)."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(30):
                while True:
                    line = (await self.process.stdout.readline()).decode()
                    assert line, f"the CLI exited; it said: {self.lines}"
                    self.lines.append(line)
                    if fragment in line:
                        return line
        except TimeoutError:
            raise AssertionError(f"no {fragment!r} in 30 s; the CLI said: {self.lines}") from None

    async def type(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    async def quit(self) -> int:
        await self.type("/quit")
        return await self.exit_code()

    async def exit_code(self) -> int:
        async with asyncio.timeout(30):
            return await self.process.wait()
