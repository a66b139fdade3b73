"""The patient of a room, end to end: a care-team room's encrypted profile (title,
patient, notes) reaches every member device and the room's archiver; a member removed
from the room does not get its later versions; a téléexpertise room gets its patient from
the request's device; the server stores only ciphertext."""

from __future__ import annotations

import asyncio

import pytest

from client.api import ApiError
from client.teleexpertise.profile import RoomProfileContent, profile_of, set_profile
from tests.e2e.sdk import TIMEOUT, new_client
from tests.e2e.teleexpertise_helpers import DOCTOR, NURSE, ORGANISATION, plaintext_found
from tests.e2e.test_archiver import archiver_client, create_archiver
from tests.teleexpertise.samples import patient

pytestmark = [pytest.mark.e2e]
PHYSIO = "810004123450"
NOTES = "Pansement tous les deux jours ; allergie au latex."


async def publish(client, room, profile):
    """An admin's device sets the room's next profile version."""
    await set_profile(client, room, profile)


def held(client, room):
    """The newest profile this device holds, without asking the server."""
    return profile_of(client, room)


async def current_profile(client, room):
    """The newest profile this device can read, after fetching what is queued for it."""
    await client.refresh_state(room)
    await client.process_to_device()
    return profile_of(client, room)


@pytest.mark.own_server  # it stops its server
async def test_the_patient_of_a_care_team_room(server, server_env, tmp_path):
    token_file = tmp_path / "archiver.json"
    await asyncio.to_thread(create_archiver, server_env, token_file)
    archiver = await archiver_client(server, tmp_path, token_file)
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    physio = await new_client(server.http_url, tmp_path, PHYSIO, "physio")
    room = await nurse.create_room(
        kind="care_team", members=[DOCTOR, PHYSIO], archiver=ORGANISATION
    )
    for member in (doctor, physio):
        async with asyncio.timeout(TIMEOUT):
            await member.wait_for_room(lambda r: r.room_id == room)

    first = RoomProfileContent(title="Mme PAT-TROIS, plaie talon", patient=patient(), notes=NOTES)
    await publish(nurse, room, first)
    for member in (doctor, physio):
        seen = await current_profile(member, room)
        assert seen is not None
        assert (seen.version, seen.content) == (1, first)
    await archiver.connect()
    archived = await current_profile(archiver, room)
    assert archived is not None
    assert (archived.version, archived.content.patient) == (1, patient())

    # A member leaves; the next version does not reach him.
    await nurse.remove_member(room, PHYSIO)
    second = RoomProfileContent(
        title="Mme PAT-TROIS, plaie talon (J+7)", patient=patient(), notes="Cicatrisation."
    )
    await publish(nurse, room, second)
    seen = await current_profile(doctor, room)
    assert seen is not None
    assert (seen.version, seen.content) == (2, second)
    archived = await current_profile(archiver, room)
    assert archived is not None
    assert archived.version == 2
    await physio.process_to_device()
    stale = held(physio, room) if room in physio.rooms else None
    assert stale is None or (stale.version, stale.content) == (1, first)

    # Only admins edit it.
    with pytest.raises(ApiError) as not_admin:
        await publish(doctor, room, second)
    assert not_admin.value.code == "not_admin"
    for client in (nurse, doctor, physio, archiver):
        await client.close()
    server.stop()
    assert (
        await plaintext_found(
            ["PAT-TROIS", "279035121518989", "1979-03-28", NOTES, "Cicatrisation"],
            [server.log_path],
        )
        == []
    )


async def test_a_teleexpertise_room_shows_its_patient(server, server_env, tmp_path):
    from datetime import date

    from tests.e2e.teleexpertise_helpers import archiver_client as te_archiver
    from tests.e2e.teleexpertise_helpers import in_hours, next_event, te_client
    from tests.teleexpertise.samples import consent

    token_file = tmp_path / "archiver.json"
    await asyncio.to_thread(create_archiver, server_env, token_file)
    archiver, _ = await te_archiver(server, tmp_path, token_file)
    nurse, nurse_te = await te_client(server, tmp_path, NURSE, "nurse")
    doctor, doctor_te = await te_client(server, tmp_path, DOCTOR, "doctor")
    sent = await nurse_te.request(
        requis=DOCTOR,
        patient=patient(),
        reason="Plaie du talon",
        question="Avis ?",
        consent=consent(obtained_on=date.today()),
        deadline=in_hours(24),
        archiver=ORGANISATION,
    )
    async with asyncio.timeout(TIMEOUT):
        await doctor.wait_for_room(lambda r: r.room_id == sent.room_id)
    await next_event(doctor_te)
    for client in (doctor, archiver):
        if client is archiver:
            await archiver.connect()
        shown = await current_profile(client, sent.room_id)
        assert shown is not None
        assert (shown.content.title, shown.content.patient) == (
            "Téléexpertise : Plaie du talon",
            patient(),
        )
    for client in (nurse, doctor, archiver):
        await client.close()
