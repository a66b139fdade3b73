"""Recovery after a 30-second PostgreSQL outage and a 30-second Redis outage, under load.

    make bench-outages          # or: python -m bench.outages [--outage 30] [--pairs 20]

Two Relais server processes (uvicorn, as deployed) on a PostgreSQL and a Redis of this
run's own (``bench.faults``: never the machine's shared ones). Each pair of devices
shares a room; the sender is on one process and the receiver on the other, so every
message crosses Redis. Senders write ``--rate`` messages per second each and behave as
the protocol asks (``bench.fault_clients``). Then:

1. PostgreSQL is stopped (``pg_ctl -m immediate``, like a crash) for ``--outage`` seconds
   and started again. Measured from the moment it accepts connections again: when each
   process answers ``/healthz`` 200, when each stores a message again, and when every
   message written during the outage is stored; during the outage, how long a send
   waited for its ``server_busy`` and a ping for its pong.
2. Redis is killed for ``--outage`` seconds and started again. Measured from the moment
   it answers again: when every message acknowledged during the outage has reached its
   receiver on the other process (without another message to reveal the gap), and how
   many lines each process logged meanwhile.
3. Everything written is acknowledged and received; the database is compared with what
   the clients saw: messages lost and duplicated (both must be 0).

Prints a summary and writes the whole report to ``var/bench/outages-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.fault_clients import Ledger, Receiver, Sender, now, verdict
from bench.faults import FaultLab

OUTPUT = Path(__file__).resolve().parents[1] / "var" / "bench"


async def _until(check: Any, *, within: float) -> float | None:
    """When ``check()`` first held (polled every 20 ms), or None after ``within`` s."""
    deadline = now() + within
    while now() < deadline:
        if await check():
            return now()
        await asyncio.sleep(0.02)  # polling other processes' state; nothing to await
    return None


def _holds(predicate: Any) -> Any:
    async def check() -> bool:
        return bool(predicate())

    return check


def _seconds(moment: float | None, origin: float) -> float | None:
    return None if moment is None else round(moment - origin, 3)


async def run(*, outage: float, pairs: int, rate: float) -> dict[str, Any]:
    lab = FaultLab(processes=2, pairs=pairs)
    await asyncio.to_thread(lab.start)
    ledger = Ledger()
    stop_sending, done = asyncio.Event(), asyncio.Event()
    senders: list[Sender] = []
    tasks: list[asyncio.Task[None]] = []
    report: dict[str, Any] = {"outage_seconds": outage, "pairs": pairs, "rate_per_pair": rate}
    try:
        for index, room in enumerate(lab.fixtures["rooms"]):
            writer, reader = room["members"]
            near, far = index % 2, (index + 1) % 2
            sender = Sender(
                name=f"p{index}",
                url=lab.servers[near].ws_url,
                server=near,
                token=writer["token"],
                room=room["id"],
                rate=rate,
                ledger=ledger,
            )
            senders.append(sender)
            receiver = Receiver(
                url=lab.servers[far].ws_url, token=reader["token"], room=room["id"], ledger=ledger
            )
            tasks.append(asyncio.create_task(receiver.run(done)))
            tasks.append(asyncio.create_task(sender.run(stop_sending, done)))
        await asyncio.sleep(5)  # load before the first fault

        # PostgreSQL ----------------------------------------------------------------
        await asyncio.to_thread(lab.postgres.stop)
        pg_down = now()
        answers_before = len(ledger.answers)
        pongs_before = len(ledger.pongs)
        await asyncio.sleep(outage)  # the outage itself
        await asyncio.to_thread(lab.postgres.start)
        pg_back = now()
        written_during = {f"{s.name}-{n}" for s in senders for n in range(1, s.numbers + 1)}
        health = []
        for server in lab.servers:

            async def healthy(server: Any = server) -> bool:
                status, _body = await asyncio.to_thread(server.health)
                return bool(status == 200)

            health.append(_seconds(await _until(healthy, within=60), pg_back))
        first_ack = [
            _seconds(
                await _until(
                    _holds(
                        lambda i=i: any(
                            at >= pg_back and at_server == i
                            for at, at_server in ledger.acked_at.values()
                        )
                    ),
                    within=60,
                ),
                pg_back,
            )
            for i in range(len(lab.servers))
        ]
        all_stored = _seconds(
            await _until(_holds(lambda: written_during <= set(ledger.acked)), within=120), pg_back
        )
        busy = [
            answered - sent
            for sent, answered, code in ledger.answers[answers_before:]
            if code == "server_busy" and sent >= pg_down
        ]
        pong_delays = [pong - ping for ping, pong in ledger.pongs[pongs_before:]]
        report["postgresql"] = {
            "healthz_200_after_s": health,
            "first_ack_after_s": first_ack,
            "everything_written_during_the_outage_stored_after_s": all_stored,
            "server_busy_answers": len(busy),
            "server_busy_wait_median_s": round(statistics.median(busy), 4) if busy else None,
            "server_busy_wait_max_s": round(max(busy), 4) if busy else None,
            "pong_wait_max_s": round(max(pong_delays), 4) if pong_delays else None,
            "closes": dict(ledger.closes),
        }

        # Redis ---------------------------------------------------------------------
        await asyncio.sleep(10)
        lines_before = [len(server.log_path.read_text().splitlines()) for server in lab.servers]
        await asyncio.to_thread(lab.redis.stop)
        await asyncio.sleep(outage)  # the outage itself
        await asyncio.to_thread(lab.redis.start)
        redis_back = now()
        acked_before_back = {cid for cid, (at, _s) in ledger.acked_at.items() if at < redis_back}
        caught_up = _seconds(
            await _until(_holds(lambda: acked_before_back <= set(ledger.received_at)), within=120),
            redis_back,
        )
        live_again = _seconds(
            await _until(
                _holds(
                    lambda: any(
                        ledger.received_at.get(cid, 0) > at >= redis_back
                        for cid, (at, _s) in ledger.acked_at.items()
                    )
                ),
                within=60,
            ),
            redis_back,
        )
        await asyncio.sleep(2)
        outage_log = [
            server.log_path.read_text().splitlines()[before:]
            for server, before in zip(lab.servers, lines_before, strict=True)
        ]
        report["redis"] = {
            "everything_acknowledged_meanwhile_received_after_s": caught_up,
            "first_live_delivery_after_s": live_again,
            "log_lines_per_process": [len(lines) for lines in outage_log],
            "log_lines": outage_log,
        }

        # Drain and count -----------------------------------------------------------
        stop_sending.set()
        drained = await _until(_holds(lambda: not any(s.outstanding for s in senders)), within=120)
        received = await _until(
            _holds(lambda: set(ledger.acked) <= set(ledger.received_at)), within=60
        )
        report["drained"] = drained is not None and received is not None
    finally:
        done.set()
        stop_sending.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    try:
        with psycopg.connect(lab.database_url) as connection:
            stored = connection.execute(
                "SELECT room_id, seq, client_id FROM chat_envelope"
            ).fetchall()
        report["verdict"] = verdict(ledger, stored)
    finally:
        await asyncio.to_thread(lab.close)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=30.0, help="seconds each outage lasts")
    parser.add_argument("--pairs", type=int, default=20, help="sender/receiver pairs")
    parser.add_argument("--rate", type=float, default=15.0, help="messages/s per sender")
    options = parser.parse_args()
    report = asyncio.run(run(outage=options.outage, pairs=options.pairs, rate=options.rate))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"outages-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    pg, redis, result = report["postgresql"], report["redis"], report["verdict"]
    print(
        f"PostgreSQL down {options.outage:.0f} s: /healthz 200 after "
        f"{pg['healthz_200_after_s']} s, first ack after {pg['first_ack_after_s']} s, "
        "all written meanwhile stored after "
        f"{pg['everything_written_during_the_outage_stored_after_s']} s; server_busy in "
        f"{pg['server_busy_wait_median_s']} s (max {pg['server_busy_wait_max_s']} s), "
        f"pong max {pg['pong_wait_max_s']} s; closes {pg['closes']}\n"
        f"Redis down {options.outage:.0f} s: all acknowledged meanwhile received after "
        f"{redis['everything_acknowledged_meanwhile_received_after_s']} s, live again after "
        f"{redis['first_live_delivery_after_s']} s, log lines per process "
        f"{redis['log_lines_per_process']}\n"
        f"messages: {result['acked']} acknowledged, {result['stored']} stored, "
        f"{result['lost']} lost, {result['duplicated']} duplicated, "
        f"{result['sequence_gaps']} sequence gaps; report: {path}"
    )


if __name__ == "__main__":
    main()
