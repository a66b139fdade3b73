"""The command lines that start a Relais server process, in one place.

The systemd unit (``deploy/systemd/relais@.service``), the end-to-end tests and the
benchmark all run these, so that what is tested and measured is what is deployed.
"""

from __future__ import annotations

import sys

# Inbound frames up to 128 KiB reach the application, which answers frame_too_large
# itself above its own 64 KiB limit; every frame Relais sends is under 128 KiB.
FRAME_LIMIT_BYTES = 128 * 1024


def uvicorn_command(*, host: str, port: int) -> list[str]:
    """The production server: uvicorn with uvloop, httptools and ``websockets``."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "server.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        # httptools, with a deadline for the request head (server/http_protocol.py).
        "--http",
        "server.http_protocol:HeadDeadlineHttpToolsProtocol",
        "--ws",
        "websockets-sansio",
        "--ws-max-size",
        str(FRAME_LIMIT_BYTES),
        # Envelopes are ciphertext: compressing them costs CPU and saves nothing.
        "--ws-per-message-deflate",
        "false",
        "--lifespan",
        "off",
        "--no-access-log",
    ]


def daphne_command(*, host: str, port: int) -> list[str]:
    """Daphne, Channels' server (``runserver`` in development uses it too)."""
    return [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        host,
        "-p",
        str(port),
        # Autobahn counts outgoing frames against this limit too.
        "--websocket-max-message-size",
        str(FRAME_LIMIT_BYTES),
        "--websocket-max-frame-size",
        str(FRAME_LIMIT_BYTES),
        "server.asgi:application",
    ]


SERVER_COMMANDS = {"uvicorn": uvicorn_command, "daphne": daphne_command}
