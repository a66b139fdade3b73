"""The transport on a real server process (uvicorn, as deployed): slow and silent
clients are timed out by the application itself (not only by nginx in front), and what
the WebSocket layer refuses before the application reads it closes as
docs/protocol.md §1 says."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.server import ServerProcess, production_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def impatient_server(transactional_db, tmp_path):
    server = ServerProcess(
        env=production_env(RELAIS_HTTP_HEADER_TIMEOUT="1", RELAIS_WS_AUTH_TIMEOUT="1"),
        log_path=tmp_path / "server.log",
    )
    server.start()
    yield server
    server.stop()


def closed_by_server(sock: socket.socket, *, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(1024)
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def test_incomplete_request_heads_are_closed_and_others_served(impatient_server):
    started = time.monotonic()
    slow = []
    for number in range(100):
        sock = socket.create_connection(("127.0.0.1", impatient_server.port))
        if number % 3 == 1:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
        elif number % 3 == 2:
            sock.sendall(b"GET /ws/v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        slow.append(sock)  # number % 3 == 0: sends nothing at all
    assert impatient_server.wait_healthy(timeout=5)["status"] == "ok"  # others are served
    assert all(closed_by_server(sock, within=5) for sock in slow)
    assert time.monotonic() - started < 8
    for sock in slow:
        sock.close()


async def test_a_websocket_that_never_authenticates_is_closed(impatient_server):
    async with connect(impatient_server.ws_url, origin="http://127.0.0.1") as websocket:  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(websocket.recv(), timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4001
        assert time.monotonic() - started < 3


@pytest.fixture
def token(practitioners, device_token) -> str:
    return str(device_token(practitioners["nurse"])[1])


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe not UTF-8", 1007),
        (b'{"type": "ping", "nonce": "' + b"x" * (129 * 1024) + b'"}', 1009),
    ],
)
async def test_what_the_websocket_layer_refuses_closes_with_its_code(
    impatient_server, token, payload, code
):
    async with connect(
        impatient_server.ws_url,
        origin="http://127.0.0.1",  # type: ignore[arg-type]
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=None,
    ) as websocket:
        assert json.loads(await websocket.recv())["type"] == "ready"
        await websocket.send(payload, text=True)  # a text frame, bytes as they are
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(websocket.recv(), timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == code
