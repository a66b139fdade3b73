"""Web Push benchmark: what the worker delivers, and what push costs the send path.

1. **Worker throughput.** ``manage.py push_worker`` (a real process) reads jobs from the
   Redis stream, resolves the recipients in PostgreSQL, checks presence in Redis,
   encrypts (RFC 8291) and POSTs every push to a local push service running in another
   process, which checks the VAPID JWT and decrypts every push before counting it.
   Reported: pushes/s from the first job queued to the last push accepted.
2. **Send path, push off vs on.** A real server process; ``--send-rooms`` rooms, each
   with a connected sender, a connected recipient and an offline device subscribed to
   the push service. Closed loop: the sender sends a 200-byte envelope, waits for its
   ``ack`` and for the recipient's ``message``, repeats. Rounds rotate three modes, so
   drift of the shared machine hits them alike:
   ``off`` (no VAPID key), ``queue`` (push enabled: every message appends a job to the
   Redis stream, but no worker runs: the send path's own cost), ``on`` (the worker runs
   too and sends every push, competing for the same CPU cores).

    python -m bench.push --database-url postgres://postgres@127.0.0.1:5432/relais_push_bench

The database named in ``--database-url`` is dropped and re-created: give a scratch one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BODY = base64.urlsafe_b64encode(os.urandom(200)).decode().rstrip("=")
SUBJECT = "mailto:bench@relais.example"


# The push service, in a process of its own -------------------------------------------


def _receiver_process(conn: Connection, vapid_public_key: str) -> None:
    asyncio.run(_serve_receiver(conn, vapid_public_key))


async def _serve_receiver(conn: Connection, vapid_public_key: str) -> None:
    from tests.push.receiver import PushReceiver

    receiver = PushReceiver(vapid_public_key=vapid_public_key)
    await receiver.start()
    conn.send(receiver.port)
    done = asyncio.Event()

    def on_command() -> None:
        command, argument = conn.recv()
        if command == "subscribe":
            conn.send([receiver.subscribe().to_json() for _ in range(argument)])
        elif command == "count":
            conn.send((receiver.count, len(receiver.rejections), receiver.rejections[:3]))
        else:
            done.set()

    asyncio.get_running_loop().add_reader(conn.fileno(), on_command)
    await done.wait()
    await receiver.close()


class ReceiverClient:
    def __init__(self, vapid_public_key: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_receiver_process, args=(child, vapid_public_key), daemon=True
        )
        self._process.start()
        self.port: int = self._conn.recv()

    def subscribe(self, count: int) -> list[dict[str, Any]]:
        self._conn.send(("subscribe", count))
        subscriptions: list[dict[str, Any]] = self._conn.recv()
        return subscriptions

    def count(self) -> tuple[int, int, list[str]]:
        self._conn.send(("count", None))
        answer: tuple[int, int, list[str]] = self._conn.recv()
        return answer

    def stop(self) -> None:
        self._conn.send(("stop", None))
        self._process.join(timeout=10)


# Processes of Relais -----------------------------------------------------------------


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "push_worker"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "started" not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"push worker did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)  # polling the log for the start line; nothing else to wait on
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# Data ---------------------------------------------------------------------------------


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def make_people(prefix: str, count: int) -> list[Any]:
    from directory.models import Practitioner

    return Practitioner.objects.bulk_create(
        Practitioner(
            national_id=f"{prefix}{n:05d}",
            first_name="Bench",
            last_name=f"{prefix}{n}",
            profession_code="10",
        )
        for n in range(count)
    )


def make_room(members: list[Any]) -> int:
    from chat.models import Membership, Role, Room

    room = Room.objects.create(kind="care_team", created_by=members[0])
    Membership.objects.bulk_create(
        Membership(room=room, practitioner=p, role=Role.ADMIN if i == 0 else Role.MEMBER)
        for i, p in enumerate(members)
    )
    return int(room.pk)


def subscribe(device_id: int, practitioner_id: str, browser: dict[str, Any]) -> None:
    from chat.services.devices import DeviceIdentity
    from push.conf import push_settings
    from push.services import check_subscription, do_register_subscription

    checked = check_subscription(
        endpoint=browser["endpoint"],
        p256dh=browser["keys"]["p256dh"],
        auth=browser["keys"]["auth"],
        expires_at=None,
        settings=push_settings(),
    )
    identity = DeviceIdentity(device_id=device_id, practitioner_id=practitioner_id)
    do_register_subscription(identity=identity, subscription=checked)


def new_device(practitioner: Any, name: str) -> tuple[int, str]:
    from chat.services.devices import do_issue_device_token

    device, token = do_issue_device_token(practitioner=practitioner, device_name=name)
    return int(device.pk), token


# 1. Worker throughput -------------------------------------------------------------------


def worker_throughput(
    args: argparse.Namespace, env: dict[str, str], receiver: ReceiverClient, logs: Path
) -> dict[str, float]:
    import redis

    from push.jobs import PushJob, stream_key

    people = make_people("t", args.members + 1)
    sender_device, _ = new_device(people[0], "sender")
    browsers = receiver.subscribe(args.members)
    for person, browser in zip(people[1:], browsers, strict=True):
        device_id, _ = new_device(person, "phone")
        subscribe(device_id, person.national_id, browser)
    rooms = [make_room(people) for _ in range(args.rooms)]
    expected = args.rooms * args.members

    worker = start_worker(env, logs / "worker-throughput.log")
    before, _, _ = receiver.count()
    client = redis.Redis.from_url(env["RELAIS_REDIS_URL"])
    started = time.perf_counter()
    with client.pipeline(transaction=False) as pipe:
        for room in rooms:
            fields: dict[Any, Any] = PushJob(room, 1, sender_device).to_fields()
            pipe.xadd(stream_key(env["RELAIS_REDIS_PREFIX"]), fields)
        pipe.execute()
    deadline = started + 300
    while (received := receiver.count()[0] - before) < expected:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {received} of {expected} pushes arrived")
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop(worker)
    client.close()
    _, rejected, examples = receiver.count()
    if rejected:
        raise RuntimeError(f"the push service refused {rejected} pushes: {examples}")
    return {"pushes": expected, "seconds": elapsed, "per_second": expected / elapsed}


# 2. Send path, push off vs on -------------------------------------------------------------


@dataclass
class Round:
    mode: str
    ack_ms: list[float] = field(default_factory=list)
    delivery_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    pushes: int = 0


async def _arrival(ws: Any, frame_type: str) -> float:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame["type"] == frame_type:
            return time.perf_counter()


async def closed_loop(
    url: str, pairs: list[tuple[int, str, str]], seconds: float, warmup: float, result: Round
) -> None:
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    async def open_client(token: str) -> Any:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            origin=Origin("http://127.0.0.1"),
        )
        await _arrival(ws, "ready")
        await ws.send(json.dumps({"type": "sync", "rooms": {}}))
        await _arrival(ws, "synced")
        return ws

    clients = [(room, await open_client(a), await open_client(b)) for room, a, b in pairs]
    begin = time.perf_counter()
    measure_from = begin + warmup
    stop_at = measure_from + seconds

    async def run(room: int, sender: Any, recipient: Any) -> None:
        number = 0
        while (sent := time.perf_counter()) < stop_at:
            number += 1
            frame = {
                "type": "send",
                "room": room,
                "id": f"{result.mode}-{uuid.uuid4().hex}",
                "body": BODY,
            }
            await sender.send(json.dumps(frame))
            acked, delivered = await asyncio.gather(
                _arrival(sender, "ack"), _arrival(recipient, "message")
            )
            if sent >= measure_from:
                result.ack_ms.append((acked - sent) * 1000)
                result.delivery_ms.append((delivered - sent) * 1000)

    await asyncio.gather(*(run(room, a, b) for room, a, b in clients))
    result.seconds = time.perf_counter() - measure_from
    for _, a, b in clients:
        await a.close()
        await b.close()


def send_path(
    args: argparse.Namespace, env: dict[str, str], receiver: ReceiverClient, logs: Path
) -> list[Round]:
    from tests.e2e.server import ServerProcess

    people = make_people("s", args.send_rooms * 3)
    pairs: list[tuple[int, str, str]] = []
    browsers = receiver.subscribe(args.send_rooms)
    for index in range(args.send_rooms):
        a, b, c = people[index * 3 : index * 3 + 3]
        room = make_room([a, b, c])
        _, token_a = new_device(a, "phone")
        _, token_b = new_device(b, "phone")
        device_c, _ = new_device(c, "phone")  # offline, subscribed: every message pushes
        subscribe(device_c, c.national_id, browsers[index])
        pairs.append((room, token_a, token_b))

    without_push = {k: v for k, v in env.items() if not k.startswith("RELAIS_VAPID_")}
    rounds: list[Round] = []
    for number, mode in enumerate(["off", "queue", "on"] * args.rounds):
        server = ServerProcess(
            env=without_push if mode == "off" else env,
            log_path=logs / f"server-{number}-{mode}.log",
        )
        server.start()
        worker = start_worker(env, logs / f"worker-{number}.log") if mode == "on" else None
        before, _, _ = receiver.count()
        result = Round(mode=mode)
        asyncio.run(closed_loop(server.ws_url, pairs, args.seconds, args.warmup, result))
        if worker is not None:
            time.sleep(1)  # let the last pushes land before counting them
            stop(worker)
        result.pushes = receiver.count()[0] - before
        server.stop()
        rounds.append(result)
        print(
            f"  round {number + 1} push {mode}: {len(result.ack_ms) / result.seconds:.0f} "
            f"sends/s, ack p50 {percentile(result.ack_ms, 50):.2f} ms",
            file=sys.stderr,
        )
    return rounds


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


# Main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/relais_push_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rooms", type=int, default=40, help="throughput: jobs (rooms)")
    parser.add_argument("--members", type=int, default=50, help="throughput: pushes per job")
    parser.add_argument("--send-rooms", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of off/on rounds")
    args = parser.parse_args()

    from push.vapid import generate_key

    key = generate_key()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")},
        "RELAIS_DEBUG": "1",  # http push service on localhost, any host
        "RELAIS_DATABASE_URL": args.database_url,
        "RELAIS_REDIS_URL": args.redis_url,
        "RELAIS_REDIS_PREFIX": f"bench-push-{uuid.uuid4().hex[:8]}",
        "RELAIS_DB_CONN_MAX_AGE": "60",
        "RELAIS_LOG_LEVEL": "WARNING",
        "RELAIS_VAPID_PRIVATE_KEY": key.private_key_text,
        "RELAIS_VAPID_SUBJECT": SUBJECT,
        "RELAIS_WS_RATE_PER_SECOND": "100000",
        "RELAIS_WS_RATE_BURST": "100000",
        "DJANGO_SETTINGS_MODULE": "server.settings",
    }
    recreate_database(args.database_url)
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    logs = ROOT / "var" / "bench-push"
    logs.mkdir(parents=True, exist_ok=True)
    receiver = ReceiverClient(key.public_key)
    try:
        print("worker throughput...", file=sys.stderr)
        throughput = worker_throughput(args, env, receiver, logs)
        print("send path, push off / on...", file=sys.stderr)
        rounds = send_path(args, env, receiver, logs)
    finally:
        receiver.stop()
        import redis

        with redis.Redis.from_url(args.redis_url) as client:
            keys = list(client.scan_iter(f"{env['RELAIS_REDIS_PREFIX']}:*"))
            if keys:
                client.delete(*keys)

    print(
        f"\nWorker: {throughput['pushes']:.0f} pushes in {throughput['seconds']:.2f} s = "
        f"**{throughput['per_second']:.0f} pushes/s** (each VAPID-checked and decrypted by "
        f"the push service)\n"
    )
    print(
        "| push | sends/s | ack p50 ms | ack p99 ms | delivery p50 ms | delivery p99 ms "
        "| pushes received |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in ("off", "queue", "on"):
        chosen = [r for r in rounds if r.mode == mode]
        acks = [v for r in chosen for v in r.ack_ms]
        deliveries = [v for r in chosen for v in r.delivery_ms]
        seconds = sum(r.seconds for r in chosen)
        print(
            f"| {mode} | {len(acks) / seconds:.0f} | {statistics.median(acks):.2f} | "
            f"{percentile(acks, 99):.2f} | {statistics.median(deliveries):.2f} | "
            f"{percentile(deliveries, 99):.2f} | {sum(r.pushes for r in chosen)} |"
        )


if __name__ == "__main__":
    main()
