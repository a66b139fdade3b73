"""A care-team room's profile reaches a practitioner's linked and recovered devices
(protocol §10.9): its key travels with the history keys — in the transfer to a linked
device and in the backup sealed to the recovery code — so the new device shows the
room's title before anyone shares keys again. A profile key the room's verified state
does not name is refused."""

from __future__ import annotations

import asyncio

import pytest

from client.history import RoomProfileKey, seal_transfer
from client.session import RelaisClient
from e2ee.encoding import b64u
from e2ee.profile import ProfileKey
from tests.e2e.sdk import TIMEOUT, barrier, open_client, wait_alert

pytestmark = pytest.mark.e2e
NURSE, DOCTOR = "810003456786", "810001987659"
TITLE = "Mme D. — plaie du talon gauche"


async def care_team_with_profile(nurse: RelaisClient, doctor: RelaisClient, title: str) -> int:
    """A care-team room of the nurse (admin) and the doctor, with a profile the doctor's
    device has read."""
    room = await nurse.create_room(kind="care_team", members=[DOCTOR])
    await nurse.set_room_profile(room, {"title": title, "notes": "Passage IDE matin et soir"})
    await doctor.refresh_state(room)
    await doctor.process_to_device()
    shown = doctor.room_profile(room)
    assert shown is not None
    assert shown.content["title"] == title
    return room


def shares_received(client: RelaisClient, room: int) -> int:
    """Sender keys this device got by a share (history keys are kept apart)."""
    return len(client.rooms[room].inbound)


async def test_a_linked_device_shows_the_title_without_a_new_share(server, tmp_path):
    nurse = await open_client(server.http_url, tmp_path, NURSE, "nurse")
    phone = await open_client(server.http_url, tmp_path, DOCTOR, "doctor-phone")
    room = await care_team_with_profile(nurse, phone, TITLE)

    laptop = await open_client(
        server.http_url, tmp_path, DOCTOR, "doctor-laptop", linked_from=phone
    )
    await barrier(laptop)
    await laptop.process_to_device()
    assert shares_received(laptop, room) == 0  # nobody shared a key with it
    shown = laptop.room_profile(room)
    assert shown is not None
    assert (shown.version, shown.content["title"]) == (1, TITLE)
    for client in (nurse, phone, laptop):
        await client.close()


async def test_a_recovered_device_shows_the_title(server, tmp_path):
    nurse = await open_client(server.http_url, tmp_path, NURSE, "nurse")
    phone, code = await open_client(
        server.http_url, tmp_path, DOCTOR, "doctor-phone", with_code=True
    )
    room = await care_team_with_profile(nurse, phone, TITLE)
    # Backed up as the share and the profile came, with no new connection (the phone
    # works on in the background: its own upload is waited for, not made here).
    async with asyncio.timeout(TIMEOUT):
        while {k.id for k in phone.held_profile_keys()} - set(phone.history.data["uploaded"]):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert phone.held_profile_keys()
    assert await phone.upload_backup() == 0
    await phone.close()
    await asyncio.to_thread((tmp_path / "doctor-phone.store").unlink)  # every device lost

    restored = await open_client(
        server.http_url, tmp_path, DOCTOR, "doctor-new", recovery_code=str(code)
    )
    assert shares_received(restored, room) == 0
    shown = restored.room_profile(room)
    assert shown is not None
    assert (shown.version, shown.content["title"]) == (1, TITLE)
    # Recovered, it backs the key up again under the same id: nothing new to send.
    assert await restored.upload_backup() == 0
    await nurse.close()
    await restored.close()


async def test_a_profile_key_the_room_state_does_not_name_is_refused(server, tmp_path):
    """A transfer that names, for the room, a key id its state does not have, or the
    room's key id with a key that does not open its profile, is refused with an alert
    and nothing is kept — even signed by a device of the same practitioner (a device
    whose keys an attacker holds, or a faulty one)."""
    nurse = await open_client(server.http_url, tmp_path, NURSE, "nurse")
    phone = await open_client(server.http_url, tmp_path, DOCTOR, "doctor-phone")
    room = await care_team_with_profile(nurse, phone, TITLE)
    laptop = await open_client(
        server.http_url, tmp_path, DOCTOR, "doctor-laptop", linked_from=phone
    )
    await laptop.process_to_device()
    uid = laptop.rooms[room].state.room
    held_before = dict(laptop.rooms[room].profile_keys)
    assert len(held_before) == 1

    named = laptop.rooms[room].state.profile
    assert named is not None
    forged = [
        ProfileKey(key_id=bytes(16), key=bytes(range(32))),  # a key id the state lacks
        ProfileKey(key_id=named.key_id, key=bytes(32)),  # the right id, a wrong key
    ]
    kex_key = laptop.key_pair.public.kex_key
    for key in forged:
        sealed = seal_transfer(
            keys=[],
            sender=phone.me,
            key_pair=phone.key_pair,
            recipient=laptop.me,
            recipient_kex=kex_key,
            profile_keys=[RoomProfileKey(room=uid, version=1, key=key)],
        )
        await phone.api.call(
            "POST",
            "devices/messages",
            json={"messages": [{"device": laptop.device_id, "body": b64u(sealed)}]},
        )
    await laptop.process_to_device()
    assert (await wait_alert(laptop, "unknown_key")).detail.startswith("history keys refused")
    assert (await wait_alert(laptop, "decrypt_failed")).detail.startswith("history keys refused")
    assert laptop.rooms[room].profile_keys == held_before
    shown = laptop.room_profile(room)
    assert shown is not None
    assert shown.content["title"] == TITLE
    for client in (nurse, phone, laptop):
        await client.close()
