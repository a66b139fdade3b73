"""A room whose signed policy says ``archive_to_members``: the archiver sends each
archive to the organisation's mailbox and to every member's personal MSSanté address
from the directory, through the real Relais server and the loopback Postfix + Dovecot;
the mails are read back over IMAP. A room without the policy goes to the organisation
only, and a server that presents the policy without a valid signature is refused."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async as sync_to_async

from archive.outbox import ArchiveState
from archive.outbox_recipients import RecipientState
from archive.recipients import NO_ADDRESS
from archive.status import room_statuses, status_lines
from directory.models import Practitioner
from e2ee.keys import DeviceKeyPair
from tests.archive.relais import (  # noqa: F401 (fixtures)
    DOCTOR,
    NURSE,
    ORGANISATION,
    PHYSIO,
    relais,
    server_env,
)
from tests.archive.test_service_e2e import TEXT, archiving, as_sent, parsed
from tests.e2e.forged_events import append_event, stored_state
from tests.e2e.sdk import new_client, next_alert, next_message

pytestmark = pytest.mark.e2e


def give_address(national_id: str, *addresses: str) -> None:
    """The directory's MSSanté extract lists these personal mailboxes for the member."""
    Practitioner.objects.filter(national_id=national_id).update(mssante_addresses=sorted(addresses))


async def doctor_with_an_address(relais, tmp_path, mail_server):  # noqa: F811 (fixture)
    """The archiver, and a nurse's archived room with the doctor, whose personal mailbox
    the directory lists, holding one message (the policy left off)."""
    service, _, _ = await archiving(relais, tmp_path, mail_server)
    await sync_to_async(give_address)(DOCTOR, mail_server.users["doctor"])
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    await nurse.send_text(room, TEXT)
    return service, nurse, doctor, room


async def test_the_policy_sends_the_same_archive_to_each_members_address(
    relais,  # noqa: F811 (fixture)
    tmp_path,
    mail_server,
):
    service, clock, lines = await archiving(relais, tmp_path, mail_server)
    personal = mail_server.users["doctor"]
    await sync_to_async(give_address)(DOCTOR, personal)
    # The physiotherapist's listed mailbox is unknown to the operator: refused at RCPT
    # while the others are accepted.
    await sync_to_async(give_address)(PHYSIO, mail_server.unknown_address)
    await sync_to_async(give_address)(NURSE)  # the directory lists none for her
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    physio = await new_client(relais.http_url, tmp_path, PHYSIO, "physio")
    room = await nurse.create_room(
        kind="care_team", members=[DOCTOR, PHYSIO], archiver=ORGANISATION
    )
    await nurse.set_archive_to_members(room, True)
    await nurse.send_text(room, TEXT)
    assert (await next_message(doctor)).text == TEXT
    assert doctor.rooms[room].state.policy.archive_to_members  # signed, seen by members

    await service.turn()
    clock.now += timedelta(hours=2, seconds=1)
    await service.turn()
    [to_records] = await asyncio.to_thread(mail_server.wait_for_mail, "records", 1)
    [to_doctor] = await asyncio.to_thread(mail_server.wait_for_mail, "doctor", 1)
    [archive] = service.outbox.archives()
    # One mail, one Message-ID, byte for byte the same in both mailboxes.
    assert parsed(to_records)["Message-ID"] == archive.message_id
    assert parsed(to_doctor)["Message-ID"] == archive.message_id
    assert as_sent(to_records) == as_sent(to_doctor)
    assert as_sent(to_doctor).startswith(b"From:")
    records = mail_server.users["records"]
    assert archive.recipients == (records, personal, mail_server.unknown_address)
    # The refusal is the physiotherapist's alone: the archive is sent, not lost.
    assert archive.state is ArchiveState.SENT
    by_who = {
        (row.address, row.national_id): (row.state, row.code)
        for row in service.outbox.recipients(archive.id)
    }
    assert by_who == {
        (records, ""): (RecipientState.ACCEPTED, ""),
        (personal, DOCTOR): (RecipientState.ACCEPTED, ""),
        (mail_server.unknown_address, PHYSIO): (RecipientState.REFUSED, "550"),
        ("", NURSE): (RecipientState.NOT_SENT, NO_ADDRESS),
    }
    actions = [(t["action"], t["code"]) for t in service.outbox.traces(archive.id)]
    assert ("member_not_sent", NO_ADDRESS) in actions
    assert ("recipient_refused", "550") in actions
    assert any("1 recipient(s) refused" in line for line in lines)
    assert not any(personal in line for line in lines)  # addresses stay out of the log
    # The operator's view says who got it.
    [status] = room_statuses(service.outbox)
    assert [r["state"] for r in status.recipients] == [
        "accepted",
        "accepted",
        "not_sent",
        "refused",
    ]
    text = "\n".join(status_lines([status]))
    assert f"-> {personal} (member {DOCTOR}): accepted" in text
    assert f"-> member {NURSE}: not_sent {NO_ADDRESS}" in text
    assert "recipient refused" in text
    for client in (nurse, doctor, physio, service.client):
        await client.close()


async def test_without_the_policy_only_the_organisation_gets_it(
    relais,  # noqa: F811 (fixture)
    tmp_path,
    mail_server,
):
    service, nurse, doctor, room = await doctor_with_an_address(relais, tmp_path, mail_server)
    await service.turn()
    service.outbox.request_cut(room)
    await service.turn()
    await asyncio.to_thread(mail_server.wait_for_mail, "records", 1)
    [archive] = service.outbox.archives()
    assert archive.recipients == (mail_server.users["records"],)
    assert [r.national_id for r in service.outbox.recipients(archive.id)] == [""]
    # The organisation's mail went through the same operator: had the doctor been a
    # recipient, the same delivery would have filled his mailbox too.
    assert await asyncio.to_thread(mail_server.mailbox, "doctor") == []
    for client in (nurse, doctor, service.client):
        await client.close()


def present_an_unsigned_policy(room_id: int, author: tuple[str, int]) -> None:
    """The dishonest server stores a ``set_policy`` turning ``archive_to_members`` on,
    in the admin's name but signed with a key of its own making (it holds no member's
    key), and updates the room as if it had verified it."""
    current = stored_state(room_id)
    policy = dataclasses.replace(current.policy, archive_to_members=True)
    append_event(
        room_id,
        current,
        author=author,
        key_pair=DeviceKeyPair.generate(),
        action="set_policy",
        content={"policy": policy.to_json()},
        policy=policy.to_json(),
    )


async def test_a_policy_the_server_made_up_is_refused(
    relais,  # noqa: F811 (fixture)
    tmp_path,
    mail_server,
):
    service, nurse, doctor, room = await doctor_with_an_address(relais, tmp_path, mail_server)
    assert (await next_message(doctor)).text == TEXT
    await service.turn()
    await sync_to_async(present_an_unsigned_policy)(room, nurse.me)

    # The archiver checks the event's signature like any member and keeps the policy
    # the signed chain gives: the archive goes to the organisation only.
    service.outbox.request_cut(room)
    await service.turn()
    archived = service.client.rooms[room]
    assert archived.compromised.startswith("bad_signature")
    assert not archived.state.policy.archive_to_members
    await asyncio.to_thread(mail_server.wait_for_mail, "records", 1)
    [archive] = service.outbox.archives()
    assert archive.recipients == (mail_server.users["records"],)
    assert await asyncio.to_thread(mail_server.mailbox, "doctor") == []
    # A member's app refuses it too, and says so.
    with pytest.raises(Exception, match="refused"):
        await doctor.send_text(room, "après")
    assert (await next_alert(doctor)).kind == "bad_signature"
    for client in (nurse, doctor, service.client):
        await client.close()
