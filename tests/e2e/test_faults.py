"""PostgreSQL and Redis die and come back under load; nothing is lost or duplicated.

Two Relais server processes (uvicorn, as deployed) on a PostgreSQL and a Redis of the
test's own (``bench.faults``: never the machine's shared ones), senders on one process
and receivers on the other, so every message crosses Redis. Each outage lasts a few
seconds here; ``bench/outages.py`` measures 30-second ones (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest

from bench.fault_clients import Ledger, Receiver, Sender, now, send_one, verdict
from bench.faults import FaultLab

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 3.0
PAIRS = 8
RATE = 8.0  # messages per second per sender: 64 in all
# One more room stays quiet but for one message, sent while Redis is away: nothing
# comes after it to reveal a gap, so only the catch-up can bring it.


@pytest.fixture(scope="module")
def lab() -> Iterator[FaultLab]:
    started = FaultLab(processes=2, pairs=PAIRS + 1)
    try:
        started.start()
        yield started
    finally:
        started.close()


async def poll(check, *, within: float, what: str) -> float:
    """Return the time at which ``check()`` first held (polled every 20 ms)."""
    deadline = now() + within
    while now() < deadline:
        if await check():
            return now()
        await asyncio.sleep(0.02)  # polling other processes' state; nothing to await
    raise AssertionError(f"{what} not within {within} s")


async def healthy(server) -> bool:
    status, _body = await asyncio.to_thread(server.health)
    return bool(status == 200)


async def test_outages_of_postgresql_and_redis_lose_and_duplicate_nothing(lab: FaultLab):
    ledger = Ledger()
    stop_sending, done = asyncio.Event(), asyncio.Event()
    senders: list[Sender] = []
    receivers: list[Receiver] = []
    *busy_rooms, quiet_room = lab.fixtures["rooms"]
    quiet = Receiver(
        url=lab.servers[1].ws_url,
        token=quiet_room["members"][1]["token"],
        room=quiet_room["id"],
        ledger=ledger,
    )
    receivers.append(quiet)
    for index, room in enumerate(busy_rooms):
        writer, reader = room["members"]
        near, far = lab.servers[index % 2], lab.servers[(index + 1) % 2]
        senders.append(
            Sender(
                name=f"p{index}",
                url=near.ws_url,
                server=index % 2,
                token=writer["token"],
                room=room["id"],
                rate=RATE,
                ledger=ledger,
            )
        )
        receivers.append(
            Receiver(url=far.ws_url, token=reader["token"], room=room["id"], ledger=ledger)
        )
    tasks = [asyncio.create_task(r.run(done)) for r in receivers]
    tasks += [asyncio.create_task(s.run(stop_sending, done)) for s in senders]
    try:
        await asyncio.sleep(1.5)  # load before the first fault

        # PostgreSQL goes away -----------------------------------------------------
        await asyncio.to_thread(lab.postgres.stop)
        pg_down = now()
        for server in lab.servers:
            status, body = await asyncio.to_thread(server.health)
            assert status == 503, body
            assert body["store"]["status"] == "error", body
        # A device connecting now is told to come back later (1013), not HTTP 500.
        newcomer = Ledger()
        stray = Receiver(
            url=lab.servers[0].ws_url,
            token=lab.fixtures["rooms"][0]["members"][1]["token"],
            room=lab.fixtures["rooms"][0]["id"],
            ledger=newcomer,
        )
        one_try = asyncio.Event()
        attempt = asyncio.create_task(stray.run(one_try))
        await poll(_async(lambda: bool(newcomer.closes)), within=5, what="the newcomer's answer")
        one_try.set()
        await attempt
        assert set(newcomer.closes) == {"close 1013"}, newcomer.closes
        # REST says the same: retry later (503 server_busy), not a server error (500).
        status, answer = await asyncio.to_thread(
            rest_get, lab.servers[1], "/api/v1/rooms", busy_rooms[0]["members"][0]["token"]
        )
        assert (status, answer["error"]["code"]) == (503, "server_busy"), answer
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (now() - pg_down)))
        await asyncio.to_thread(lab.postgres.start)
        pg_back = now()
        health_back = [
            await poll(lambda s=s: healthy(s), within=10, what="/healthz 200") - pg_back
            for s in lab.servers
        ]
        acks_back = [
            await poll(
                _async(
                    lambda i=i: any(
                        at >= pg_back and server == i for at, server in ledger.acked_at.values()
                    )
                ),
                within=10,
                what=f"an ack from process {i}",
            )
            - pg_back
            for i in range(len(lab.servers))
        ]

        # Redis goes away ----------------------------------------------------------
        await asyncio.sleep(1.0)
        log_lines_before = len(lab.log_lines())
        await asyncio.to_thread(lab.redis.stop)
        redis_down = now()
        lone = await send_one(
            url=lab.servers[0].ws_url,
            token=quiet_room["members"][0]["token"],
            room=quiet_room["id"],
            client_id="lone-message",
        )
        assert lone["type"] == "ack", lone
        ledger.acked["lone-message"] = (lone["room"], lone["seq"])
        ledger.acked_at["lone-message"] = (now(), 0)
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (now() - redis_down)))
        await asyncio.to_thread(lab.redis.start)
        redis_back = now()
        stuck = {cid for cid, (at, _server) in ledger.acked_at.items() if at < redis_back}
        caught_up = (
            await poll(
                _async(lambda: stuck <= set(ledger.received_at)),
                within=10,
                what="every message acknowledged during the Redis outage at its receiver",
            )
            - redis_back
        )
        outage_log = lab.log_lines()[log_lines_before:]

        # Drain: everything written is acknowledged, then received, without a sync.
        stop_sending.set()
        await poll(
            _async(lambda: not any(s.outstanding for s in senders)),
            within=30,
            what="every message acknowledged",
        )
        await poll(
            _async(lambda: set(ledger.acked) <= set(ledger.received_at)),
            within=10,
            what="every acknowledged message received",
        )
    finally:
        done.set()
        stop_sending.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    with psycopg.connect(lab.database_url) as connection:
        stored = connection.execute("SELECT room_id, seq, client_id FROM chat_envelope").fetchall()
    result = verdict(ledger, stored)
    busy = [answered - sent for sent, answered, code in ledger.answers if code == "server_busy"]
    print(  # the numbers, for the test log
        f"faults: {result}; /healthz back {health_back}, acks back {acks_back}, "
        f"fan-out caught up {caught_up:.2f} s; server_busy answers {len(busy)}, slowest "
        f"{max(busy, default=0):.3f} s; {len(outage_log)} log lines in the Redis outage"
    )
    assert result["acked"] > 200, result
    assert (result["lost"], result["duplicated"], result["sequence_gaps"]) == (0, 0, 0), result
    # Only "come back later" closes, from the database outage; never a dropped socket,
    # a keepalive timeout, a false "could not keep up", or an HTTP 500 at the handshake.
    assert set(ledger.closes) <= {"close 1013"}, ledger.closes
    # server_busy came at once during the outage, and pings were answered throughout.
    assert busy, "no send met the database outage"
    assert max(busy) < 1.0, max(busy)
    assert max(pong - ping for ping, pong in ledger.pongs) < 1.0
    # Usable again within about a second of the database coming back.
    assert max(health_back) < 2.0, health_back
    assert max(acks_back) < 2.0, acks_back
    assert caught_up < 2.0, caught_up
    # A few lines per outage and process, no tracebacks.
    assert not [line for line in outage_log if "Traceback" in line], outage_log
    assert len(outage_log) <= 12, outage_log


def rest_get(server, path: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}",
        # As nginx forwards it (production settings redirect plain http).
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _async(check):
    async def wrapped() -> bool:
        return bool(check())

    return wrapped
