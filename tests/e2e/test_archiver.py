"""The archiver end to end, on a real server process: the operator creates the
organisation's archiver with ``manage.py create_archiver``; the archiver certifies its
keys with the token file; a care-team room includes it by policy; members share their
sender keys with it and it decrypts their messages. A dishonest server that presents a
practitioner's device (or an uncertified key) as the archiver gets no key."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from channels.db import database_sync_to_async as sync_to_async

from chat.models import Envelope, ToDeviceMessage
from chat.services.organisations import do_create_archiver
from client.archiver import ArchiverClient, archiver_notice
from client.events import Message, SecurityError
from client.session import RelaisClient
from client.store import KeyStore
from e2ee import state as chain
from e2ee.keys import DeviceKeyPair
from tests import identities
from tests.e2e.forged_events import append_event, stored_state
from tests.e2e.sdk import TIMEOUT, new_client, next_alert, next_message
from tests.e2e.server import ROOT, ServerProcess
from tests.e2e.terminal import Terminal

pytestmark = pytest.mark.e2e
NURSE, DOCTOR, PHYSIO = "810003456786", "810001987659", "810004123450"
ORGANISATION, NAME = "org:1750000123", "Centre de santé des Pentes"


def create_archiver(server_env: dict[str, str], token_file: Path) -> subprocess.CompletedProcess:
    """What the operator runs, against the server's database."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "create_archiver",
            "--structure-id",
            "1750000123",
            "--name",
            NAME,
            "--token-file",
            str(token_file),
        ],
        cwd=ROOT,
        env={**clean, **server_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


async def archiver_client(server: ServerProcess, tmp_path: Path, token_file: Path):
    """The archiver, registered with the operator's token file (not connected yet)."""
    store = KeyStore.open(tmp_path / "archiver.store", "archive passphrase", n=2**10)
    archiver = ArchiverClient(server=server.http_url, store=store)
    await archiver.register_from_file(token_file)
    return archiver


async def messages_of(client: RelaisClient, count: int) -> list[Message]:
    return [await asyncio.wait_for(client.messages.get(), TIMEOUT) for _ in range(count)]


async def test_a_care_team_room_is_archived_by_its_organisation(server, server_env, tmp_path):
    token_file = tmp_path / "archiver.json"
    command = create_archiver(server_env, token_file)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = json.loads(token_file.read_text())["token"]
    assert token not in command.stdout + command.stderr
    assert "Archiver device" in command.stdout

    archiver = await archiver_client(server, tmp_path, token_file)
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    assert nurse.rooms[room].state.policy.archiver_required
    named = nurse.rooms[room].archiver
    assert named is not None
    assert (named.ref, named.sign_key) == (
        (ORGANISATION, archiver.device_id),
        archiver.key_pair.public.sign_key,
    )
    # Every member sees who archives the room, proven in the log.
    async with asyncio.timeout(TIMEOUT):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    named = doctor.rooms[room].archiver
    assert named is not None
    shown = await doctor.directory.archiver_of(named)
    assert (shown.name, shown.structure_id, shown.device) == (
        NAME,
        "1750000123",
        archiver.device_id,
    )
    assert NAME in (await archiver_notice(doctor, room) or "")

    await nurse.send_text(room, "Pansement refait, plaie propre.")
    assert (await next_message(doctor)).text == "Pansement refait, plaie propre."
    await doctor.send_text(room, "Vu, je passe jeudi.")
    assert (await next_message(nurse)).text == "Vu, je passe jeudi."
    # Both sender keys went to the archiver device, sealed to its key.
    shares = await sync_to_async(
        lambda: sorted(
            ToDeviceMessage.objects.filter(
                recipient_id=archiver.device_id, kind="key_share"
            ).values_list("sender_practitioner_id", flat=True)
        )
    )()
    assert shares == sorted([NURSE, DOCTOR])

    # The archiver, connected with its own device token, decrypts both.
    await archiver.connect()
    received = await messages_of(archiver, 2)
    assert [(m.seq, m.sender, m.text, m.own) for m in received] == [
        (1, nurse.me, "Pansement refait, plaie propre.", False),
        (2, doctor.me, "Vu, je passe jeudi.", False),
    ]
    assert sorted(archiver.rooms[room].state.members) == sorted([NURSE, DOCTOR])
    # And what follows, on the next catch-up.
    await nurse.send_text(room, "Rendez-vous confirmé.")
    assert (await next_message(doctor)).text == "Rendez-vous confirmé."
    await archiver.sync()
    [later] = await messages_of(archiver, 1)
    assert (later.seq, later.text) == (3, "Rendez-vous confirmé.")
    # It never writes.
    with pytest.raises(SecurityError):
        await archiver.send_text(room, "n'importe quoi")
    # An admin removes the archiver: the next key goes to the doctor only, and the
    # archiver reads nothing more.
    await archiver.disconnect()  # so that anything queued for it stays visible here
    await nurse._change(room, "set_archiver", {"archiver": None})
    await nurse.send_text(room, "Sans archivage désormais.")
    assert (await next_message(doctor)).text == "Sans archivage désormais."
    await archiver.sync()
    assert archiver.rooms[room].left  # only the verified chain is kept
    assert not archiver.rooms[room].inbound
    assert archiver.messages.empty()
    shares_after = ToDeviceMessage.objects.filter(recipient_id=archiver.device_id)
    assert await sync_to_async(shares_after.count)() == 0  # the earlier ones were read
    assert await sync_to_async(Envelope.objects.filter(room_id=room).count)() == 4
    assert archiver.alerts.empty()
    assert token not in server.log_path.read_text()
    for client in (nurse, doctor, archiver):
        await client.close()


def present_a_false_archiver(room_id: int, signer: RelaisClient, fake: chain.RoomDevice) -> None:
    """The dishonest server stores a ``set_archiver`` naming ``fake`` without its own
    checks. The event carries an admin's valid signature (a careless client of that admin
    took the server's word for which device is the archiver), so only the check of the
    device against the log can stop it."""
    append_event(
        room_id,
        stored_state(room_id),
        author=signer.me,
        key_pair=signer.key_pair,
        action="set_archiver",
        content={"archiver": fake.archiver_json()},
        author_device_id=signer.device_id,
        archiver=fake.archiver_json(),
        archiver_device_id=fake.device,
    )


def uncertified_archiver() -> chain.RoomDevice:
    """A real archiver device of the organisation, but with keys the log never saw."""
    created = do_create_archiver(structure_id="1750000123", name=NAME, device_name="archiver")
    return identities.room_device(ORGANISATION, created.device.pk, DeviceKeyPair.generate())


@pytest.mark.parametrize("fake", ["a practitioner's device", "an uncertified key"])
async def test_a_false_archiver_gets_no_key(server, tmp_path, fake):
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR])
    await nurse.send_text(room, "avant")
    assert (await next_message(doctor)).text == "avant"
    if fake == "a practitioner's device":
        physio = await new_client(server.http_url, tmp_path, PHYSIO, "physio")
        false_archiver = physio.own_room_device()  # vouched for as a device, not an archiver
        await physio.close()
    else:
        false_archiver = await sync_to_async(uncertified_archiver)()
    await sync_to_async(present_a_false_archiver)(room, nurse, false_archiver)

    # Each member's client refuses to share its key, tells its user, and sends nothing.
    for member in (doctor, nurse):
        with pytest.raises(SecurityError):
            await member.send_text(room, "le secret que l'archiveur usurpé voudrait lire")
        alert = await next_alert(member)
        if fake == "a practitioner's device":
            # The signed state itself refuses it: its identity key vouched for a device.
            assert (alert.kind, alert.room) == ("bad_signature", room)
            assert "not vouched for" in alert.detail
            assert member.rooms[room].compromised
        else:
            assert (alert.kind, alert.room) == ("key_transparency", room)
            assert "not certified as an archiver" in alert.detail
            notice = await archiver_notice(member, room)
            assert notice is not None
            assert notice.startswith("!! security")
    received = await sync_to_async(
        ToDeviceMessage.objects.filter(recipient_id=false_archiver.device).count
    )()
    assert received == 0
    assert await sync_to_async(Envelope.objects.filter(room_id=room).count)() == 1
    await nurse.close()
    await doctor.close()


async def test_the_cli_says_who_archives_the_room(server, server_env, tmp_path):
    token_file = tmp_path / "archiver.json"
    create_archiver(server_env, token_file)
    await archiver_client(server, tmp_path, token_file)
    # The nurse's terminal waits; the doctor (first in national-id order) opens the room
    # from the SDK, with the organisation's archiver.
    terminal = await Terminal.start(server, tmp_path / "nurse", NURSE, DOCTOR)
    await terminal.wait_for("waiting for")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    await doctor.create_room(kind="direct", members=[NURSE], archiver=ORGANISATION)
    line = await terminal.wait_for("archived by")
    assert line.strip().startswith(f"archived by {NAME} (structure 1750000123)")
    await terminal.wait_for("type a message")
    assert await terminal.quit() == 0
    await doctor.close()
