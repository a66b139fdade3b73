"""Téléexpertise benchmark: time from a request to the requis' device, report
generation, and the billing check per request.

    RELAIS_DATABASE_URL=postgres://postgres@127.0.0.1:5432/relais_teleexpertise_bench \\
        .venv/bin/python -m bench.teleexpertise

Against one real server process (Daphne, production settings, PostgreSQL), with two SDK
clients on the same machine (the nurse and the GP, each with its own keys):

1. **Request → requis' device**: ``TeleexpertiseClient.request`` (the billing check, a
   new téléexpertise room with its signed state, the encrypted request sent with its
   step) until the GP's client has verified the request event (the room learnt, the
   sender key received, the envelope decrypted and checked). Without a file, then with
   a 12-megapixel wound photo (photo pipeline, upload, and the GP's download of it).
2. **Report generation**: the compte rendu's PDF and CDA R2 N1 (``report_documents``),
   then the whole ``report`` step (documents, two uploads, the step, the TE2 act) and
   until the nurse's device has both documents downloaded and checked.
3. **Billing check per request**: the keyed pseudonym (HMAC-SHA256), and the whole
   check (pseudonym and ``GET billing/count`` over loopback).

The database named by RELAIS_DATABASE_URL (its name must contain "bench") is dropped,
created and migrated at every run. The machine is shared: run it more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.attachments import _fresh_database, _prepare_database, _start_server
from bench.attachments import twelve_megapixel_jpeg as wound_photo
from client.teleexpertise.sdk import Received, TeleexpertiseClient


def _summary(values: list[float], unit: str = "ms") -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(values):.1f} {unit}, p95 {p95:.1f}, "
        f"min {ordered[0]:.1f}, max {ordered[-1]:.1f} ({len(values)} runs)"
    )


async def _clients(
    url: str, logins: list[tuple[str, int, str]], work: Path
) -> list[TeleexpertiseClient]:
    from client.session import RelaisClient
    from client.store import KeyStore

    result = []
    for name, (national_id, device, token) in zip(("nurse", "doctor"), logins, strict=True):
        store = KeyStore.open(work / f"{name}.store", "bench passphrase", n=2**10)
        session = RelaisClient(server=url, store=store)
        await session.register_with_token(token=token, device=device, national_id=national_id)
        await session.connect()
        result.append(TeleexpertiseClient(session))
    return result


async def _next_event(te: TeleexpertiseClient, kind: type) -> Received:
    """The next verified event of type ``kind`` on this device."""
    while True:
        message = await asyncio.wait_for(te.session.messages.get(), 30)
        received = await te.receive(message)
        if received is not None and isinstance(received.event, kind):
            return received


async def _run(url: str, logins: list[tuple[str, int, str]], work: Path, rounds: int) -> None:
    from client.teleexpertise.contents import Report, Request
    from client.teleexpertise.report import report_documents
    from client.teleexpertise.tariffs import ActCode
    from documents.cda import Organisation, check_cda
    from teleexpertise.workflow import State
    from tests.teleexpertise.samples import consent, patient

    nurse, doctor = await _clients(url, logins, work)
    doctor.organisation = Organisation("1750000123", "Centre de santé des Pentes")
    photo = wound_photo()
    the_patient = patient()

    async def one_request(files: list[tuple[bytes, str]]) -> tuple[float, float, int, float]:
        start = time.perf_counter()
        room_id = await nurse.session.create_room(
            kind="teleexpertise", members=[doctor.session.national_id]
        )
        room_made = time.perf_counter()
        sent = await nurse.request(
            room_id=room_id,
            requis=doctor.session.national_id,
            patient=the_patient,
            reason="Plaie qui s'aggrave",
            question="Faut-il changer de pansement ?",
            consent=consent(obtained_on=date.today()),
            deadline=datetime.now(UTC) + timedelta(hours=48),
            files=files,
            acknowledge_billing_limit=True,
        )
        answered = time.perf_counter()
        received = await _next_event(doctor, Request)
        assert isinstance(received.event, Request)
        for attachment in received.event.attachments:
            await doctor.session.save_attachment(attachment, work / "doctor")
        done = time.perf_counter()
        return (
            (answered - start) * 1000,
            (done - start) * 1000,
            sent.room_id,
            (room_made - start) * 1000,
        )

    await one_request([])  # warm-up: connections, caches
    plain = [await one_request([]) for _ in range(rounds)]
    with_photo = [await one_request([(photo, "plaie.jpg")]) for _ in range(max(3, rounds // 4))]
    print("1. request -> the requis' device (one Daphne process, loopback; times from the start):")
    print(f"   the room created (signed state, keys): {_summary([p[3] for p in plain])}")
    print(f"   request() returns (text only):       {_summary([p[0] for p in plain])}")
    print(f"   the GP has it verified (text only):  {_summary([p[1] for p in plain])}")
    print(f"   request() returns (12 MP photo):     {_summary([p[0] for p in with_photo])}")
    print(f"   the GP has it + the photo saved:     {_summary([p[1] for p in with_photo])}")

    # 2. The report.
    room = plain[-1][2]
    await doctor.accept(room)
    case = doctor.cases.require(room)
    keeper = doctor.organisation
    generation = []
    for _ in range(rounds):
        start = time.perf_counter()
        documents = report_documents(
            case=case, answer="Pas d'infection.", reported_at=datetime.now(UTC), custodian=keeper
        )
        generation.append((time.perf_counter() - start) * 1000)
    print("2. report:")
    print(
        f"   PDF + CDA generation ({len(documents.pdf) // 1000} kB PDF, "
        f"{len(documents.cda) // 1000} kB CDA): {_summary(generation)}"
    )
    steps, arrivals = [], []
    for _, _, room_id, _ in plain[-max(3, rounds // 4) :]:
        if doctor.cases.require(room_id).state is State.REQUESTED:
            await doctor.accept(room_id)
        start = time.perf_counter()
        await doctor.report(room_id, "Pas d'infection : hydrocolloïde, contrôle à J+7.")
        steps.append((time.perf_counter() - start) * 1000)
        await _next_event(nurse, Report)
        paths = await nurse.save_documents(room_id, work / f"nurse-{room_id}")
        check_cda(paths[1].read_bytes())
        arrivals.append((time.perf_counter() - start) * 1000)
    print(f"   report() (documents, uploads, step, TE2 act): {_summary(steps)}")
    print(f"   until the nurse has PDF and CDA checked:      {_summary(arrivals)}")

    # 3. The billing check.
    from client.teleexpertise.billing import pseudonym

    keys = nurse.account_key
    count = 20_000
    start = time.perf_counter()
    for _ in range(count):
        pseudonym(keys, year=2026, patient=the_patient)
    hmac_us = (time.perf_counter() - start) / count * 1_000_000
    book = await nurse.billing()
    checks = []
    for _ in range(rounds * 4):
        start = time.perf_counter()
        await book.check(patient=the_patient, code=ActCode.RQD, day=date.today())
        checks.append((time.perf_counter() - start) * 1000)
    print("3. billing check per request:")
    print(f"   pseudonym (HMAC-SHA256 of the traits): {hmac_us:.1f} µs")
    print(f"   pseudonym + GET billing/count:         {_summary(checks)}")
    for te in (nurse, doctor):
        await te.session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args()
    if "RELAIS_DATABASE_URL" not in os.environ:
        raise SystemExit("set RELAIS_DATABASE_URL to a PostgreSQL database for the bench")
    _fresh_database(os.environ["RELAIS_DATABASE_URL"])
    nurse, doctor, _room = _prepare_database()
    with tempfile.TemporaryDirectory(prefix="relais-bench-") as directory:
        work = Path(directory)
        process, url = _start_server(work / "store", work / "server.log")
        try:
            asyncio.run(_run(url, [nurse, doctor], work, arguments.rounds))
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
