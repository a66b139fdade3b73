"""The archiver service against a real Relais server process, with the mail side faked
(tests/archive/fakes.py): what it collects, how it cuts, retries and marks, and what it
never archives. The same paths with the real mail server: test_service_e2e.py."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from channels.db import database_sync_to_async as sync_to_async

from archive.cuts import CutPolicy
from archive.outbox import ArchiveState, Backoff
from archive.ports import ReceiptSeen
from archive.service import ArchiveService, ServiceSettings
from archiving.models import ArchiveRoomStatus
from teleexpertise.services.clock import run_clock
from tests.archive.fakes import DOWN, REFUSED, FakeDelivery, FakePackager, body_of
from tests.archive.relais import (  # noqa: F401 (fixtures)
    DOCTOR,
    NURSE,
    ORGANISATION,
    PHYSIO,
    Clock,
    archiver_and_outbox,
    registered_archiver,
    relais,
    requested_teleexpertise,
    server_env,
    write_token_file,
)
from tests.e2e.sdk import new_client, next_message
from tests.e2e.teleexpertise_helpers import in_hours

pytestmark = pytest.mark.e2e
SENDER = "archiveur@cds-pentes.mssante.fr"


async def service_for(
    server, tmp_path: Path, clock: Clock, delivery: FakeDelivery, lines: list[str]
):
    client, outbox = await archiver_and_outbox(
        server,
        tmp_path,
        clock=clock,
        draw=lambda: 1.0,
        backoff=Backoff(base=timedelta(seconds=30)),
    )
    client.save()
    service = ArchiveService(
        client=client,
        outbox=outbox,
        packager=FakePackager(),
        delivery=delivery,
        settings=ServiceSettings(sender=SENDER, policy=CutPolicy(daily_hour=None)),
        out=lines.append,
        clock=clock,
    )
    await client.connect()
    return service


async def test_a_room_naming_the_archiver_is_archived_once_with_its_exact_range(relais, tmp_path):  # noqa: F811 (fixture)
    clock, delivery, lines = Clock(), FakeDelivery(), list[str]()
    service = await service_for(relais, tmp_path, clock, delivery, lines)
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    physio = await new_client(relais.http_url, tmp_path, PHYSIO, "physio")
    archived = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    private = await nurse.create_room(kind="care_team", members=[PHYSIO])  # no archiver
    await nurse.send_text(archived, "Pansement refait, plaie propre.")
    assert (await next_message(doctor)).text == "Pansement refait, plaie propre."
    await doctor.send_text(archived, "Vu, je passe jeudi.")
    await nurse.send_text(private, "Rien pour l'archive.")

    await service.turn()
    assert delivery.sent == []  # not idle yet
    progress = service.outbox.progress(archived)
    assert progress is not None
    assert (progress.archived_up_to, progress.received_up_to) == (0, 2)
    assert service.outbox.progress(private) is None

    clock.now += timedelta(hours=2, seconds=1)
    await service.turn()
    [mail] = delivery.sent
    assert body_of(mail) == {
        "range": [1, 2],
        "reason": "idle",
        "messages": [
            [1, NURSE, "Pansement refait, plaie propre."],
            [2, DOCTOR, "Vu, je passe jeudi."],
        ],
    }
    [archive] = service.outbox.archives()
    assert archive.state is ArchiveState.SENT
    # Nothing more to send on the next turns; the next message starts the next range.
    await nurse.send_text(archived, "Rendez-vous confirmé.")
    await service.turn()
    assert service.outbox.request_cut(archived)
    await service.turn()
    assert len(delivery.sent) == 2
    assert body_of(delivery.sent[1])["range"] == [3, 3]
    assert body_of(delivery.sent[1])["reason"] == "on_demand"
    assert all("private" not in body_of(m) for m in delivery.sent)
    # The receiving side integrates the first one, rejects the second.
    delivery.receipts_waiting = [
        ReceiptSeen(4, archive.message_id, "integrated", None, ""),
        ReceiptSeen(5, service.outbox.archives()[1].message_id, "rejected", 903, "INS absent"),
    ]
    clock.now += timedelta(minutes=5)
    await service.turn()
    states = [(a.state, a.receipt_code) for a in service.outbox.archives()]
    assert states == [(ArchiveState.INTEGRATED, None), (ArchiveState.REJECTED, 903)]
    # The operator's view on the server: numbers and codes of the archived room only.
    reported = await sync_to_async(
        lambda: list(
            ArchiveRoomStatus.objects.values_list(
                "room_id", "archived_up_to", "integrated", "rejected", "last_error_code"
            )
        )
    )()
    assert reported == [(archived, 3, 1, 1, "903")]
    assert not any("Pansement" in line or "jeudi" in line for line in lines)
    for client in (nurse, doctor, physio, service.client):
        await client.close()


async def test_a_mail_server_down_delays_and_a_refusal_is_kept(relais, tmp_path):  # noqa: F811 (fixture)
    clock, delivery, lines = Clock(), FakeDelivery(failure=DOWN), list[str]()
    service = await service_for(relais, tmp_path, clock, delivery, lines)
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    await nurse.send_text(room, "premier")
    await service.turn()
    assert service.outbox.request_cut(room)
    await service.turn()
    [archive] = service.outbox.archives()
    assert (archive.state, archive.attempts, archive.error_code) == (
        ArchiveState.PENDING,
        1,
        "smtp_unreachable",
    )
    assert any("smtp_unreachable" in line for line in lines)
    await service.turn()  # before its time: not tried again
    assert service.outbox.archive(archive.id).attempts == 1
    delivery.failure = None
    clock.now += timedelta(seconds=30)
    await service.turn()
    assert service.outbox.archive(archive.id).state is ArchiveState.SENT
    assert len(delivery.sent) == 1
    # A permanent refusal: kept as failed, surfaced, never dropped.
    await nurse.send_text(room, "second")
    await service.turn()
    service.outbox.request_cut(room)
    delivery.failure = REFUSED
    await service.turn()
    failed = service.outbox.archives()[1]
    assert (failed.state, failed.error_code) == (ArchiveState.FAILED, "smtp_refused")
    assert service.outbox.mail(failed.id)
    assert any("refusée / refused (smtp_refused)" in line for line in lines)
    for client in (nurse, doctor, service.client):
        await client.close()


async def test_a_removed_archiver_archives_nothing_after_its_removal(relais, tmp_path):  # noqa: F811 (fixture)
    clock, delivery, lines = Clock(), FakeDelivery(), list[str]()
    service = await service_for(relais, tmp_path, clock, delivery, lines)
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    await nurse.send_text(room, "avant le retrait")
    assert (await next_message(doctor)).text == "avant le retrait"
    await service.turn()
    await nurse._change(room, "set_archiver", {"archiver": None})
    await nurse.send_text(room, "après le retrait")
    assert (await next_message(doctor)).text == "après le retrait"
    await service.turn()
    [mail] = delivery.sent  # cut at once, with what came before
    assert body_of(mail)["messages"] == [[1, NURSE, "avant le retrait"]]
    assert body_of(mail)["reason"] == "archiver_removed"
    clock.now += timedelta(days=2)
    await service.turn()
    assert len(delivery.sent) == 1
    assert service.outbox.received(room, 1, 100) == []
    for client in (nurse, doctor, service.client):
        await client.close()


async def test_the_sigterm_path_stops_the_loop_between_turns(relais, tmp_path):  # noqa: F811 (fixture)
    clock, delivery, lines = Clock(), FakeDelivery(), list[str]()
    service = await service_for(relais, tmp_path, clock, delivery, lines)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 20)
    await service.client.close()


async def test_an_expired_teleexpertise_is_cut_at_the_last_message_held(relais, tmp_path):  # noqa: F811 (fixture)
    clock, delivery, lines = Clock(), FakeDelivery(), list[str]()
    service = await service_for(relais, tmp_path, clock, delivery, lines)
    nurse, _, doctor, _, room = await requested_teleexpertise(relais, tmp_path)
    await service.turn()
    clock.now += timedelta(hours=3)  # a téléexpertise is not cut for being quiet
    await service.turn()
    assert delivery.sent == []
    # The deadline passes: the server's clock expires it, which adds no event to the room.
    done = await sync_to_async(run_clock)(now=in_hours(49))
    assert room in done.expired
    await service.turn()
    [mail] = delivery.sent
    progress = service.outbox.progress(room)
    assert progress is not None
    assert body_of(mail)["reason"] == "teleexpertise_final"
    assert body_of(mail)["range"] == [1, progress.received_up_to]
    assert progress.archived_up_to == progress.received_up_to
    clock.now += timedelta(days=2)
    await service.turn()
    assert len(delivery.sent) == 1  # archived once
    for client in (nurse, doctor, service.client):
        await client.close()


async def test_a_long_catch_up_shows_its_progress(relais, tmp_path):  # noqa: F811 (fixture)
    clock, delivery, lines = Clock(), FakeDelivery(), list[str]()
    service = await service_for(relais, tmp_path, clock, delivery, lines)
    service.settings = dataclasses.replace(service.settings, catch_up_report=4)
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    rooms = [
        await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
        for _ in range(2)
    ]
    for room in rooms:
        for number in range(1, 6):
            await nurse.send_text(room, f"message {number}")
    await service.turn()  # 10 messages wait, more than 4: the catch-up is shown
    first, second = rooms
    assert lines == [
        "rattrapage de 10 messages / catching up on 10 messages",
        f"rattrapage / catching up: 5/10 messages (salon / room {first} at seq 5)",
        f"rattrapage / catching up: 10/10 messages (salon / room {second} at seq 5)",
        "rattrapage terminé / caught up",
    ]
    held = [service.outbox.progress(room) for room in rooms]
    assert [p.received_up_to if p else None for p in held] == [5, 5]
    lines.clear()
    await nurse.send_text(first, "un de plus")
    await service.turn()  # one message waits: no catch-up to show
    assert not any("rattrapage" in line for line in lines)
    for client in (nurse, doctor, service.client):
        await client.close()
