"""A dishonest server, played by this test with direct access to the server's database
and its log key, tries what the published Matrix attacks did: insert a member, swap a
device key, replay an envelope. Each time the SDK client detects it, refuses, and tells
its user; no key goes to the intruder."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async as sync_to_async
from django.db import transaction

from chat.models import Device, Envelope, Membership, Room, RoomStateEvent, ToDeviceMessage
from chat.services.devices import DeviceIdentity, do_issue_device_token
from client.directory import KeyTransparencyError
from client.events import SecurityError
from directory.models import Practitioner
from e2ee import state as chain
from e2ee import transparency
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair
from keylog.models import LogEntry
from keylog.services import do_certify_device
from keylog.signing import log_signing_key
from tests.e2e.sdk import new_client, next_alert, next_message
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e
NURSE, DOCTOR, PHYSIO = "810003456786", "810001987659", "810004123450"
LOG_KEY = b64u(bytes(range(32)))


@pytest.fixture
def server(server_env, tmp_path, practitioners, settings):
    """The server, and this test acting as its dishonest operator with its log key."""
    settings.KEYLOG_SIGNING_KEY = LOG_KEY
    log_signing_key.cache_clear()
    process = ServerProcess(
        env={**server_env, "RELAIS_DEBUG": "1", "RELAIS_KEYLOG_SIGNING_KEY": LOG_KEY},
        log_path=tmp_path / "server.log",
    )
    process.start()
    yield process
    process.stop()
    log_signing_key.cache_clear()


def rogue_device(national_id: str) -> tuple[int, DeviceKeyPair]:
    """A device the server makes for someone and certifies in its own log."""
    keys = DeviceKeyPair.generate()
    device, _ = do_issue_device_token(
        practitioner=Practitioner.objects.get(pk=national_id), device_name="rogue"
    )
    do_certify_device(
        identity=DeviceIdentity(device.pk, national_id),
        keys=keys.public,
        signature=transparency.sign_registration(
            key_pair=keys, national_id=national_id, device=device.pk
        ),
    )
    return device.pk, keys


def forge_member(room_id: int, how: str) -> int:
    """Append an add_member event the room's admins never signed, as the server would."""
    events = [
        bytes(b)
        for b in RoomStateEvent.objects.filter(room_id=room_id)
        .order_by("epoch")
        .values_list("body", flat=True)
    ]
    current = chain.replay_chain(events)
    device, keys = rogue_device(PHYSIO)
    member = chain.member_content(
        PHYSIO, "member", [chain.RoomDevice(national_id=PHYSIO, device=device, keys=keys.public)]
    )
    nurse_device = next(iter(current.members[NURSE].devices))
    author, signer = (
        ((PHYSIO, device), keys)
        if how == "signed_by_intruder"
        else ((NURSE, nurse_device), DeviceKeyPair.generate())
    )
    raw = chain.sign_event(
        state=current,
        room=current.room,
        author=author,
        key_pair=signer,
        action="add_member",
        content=member,
        timestamp=1,
    )
    with transaction.atomic():
        RoomStateEvent.objects.create(
            room_id=room_id,
            epoch=current.epoch + 1,
            action="add_member",
            author_device_id=nurse_device,
            hash=b64u(chain.event_hash(raw)),
            body=raw,
        )
        Membership.objects.create(room_id=room_id, practitioner_id=PHYSIO, role="member")
        Room.objects.filter(pk=room_id).update(
            state_epoch=current.epoch + 1, state_head=b64u(chain.event_hash(raw))
        )
    return device


@pytest.mark.parametrize("how", ["signed_by_intruder", "forged_admin_signature"])
async def test_a_member_inserted_by_the_server_is_detected(server, tmp_path, how):
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR])
    await nurse.send_text(room, "avant")
    assert (await next_message(doctor)).text == "avant"

    intruder = await sync_to_async(forge_member)(room, how)
    with pytest.raises(SecurityError):
        await nurse.send_text(room, "le secret que l'intrus voudrait lire")
    alert = await next_alert(nurse)
    assert alert.kind == ("not_authorised" if how == "signed_by_intruder" else "bad_signature")
    assert alert.room == room
    assert nurse.rooms[room].compromised
    # No sender key ever went to the intruding device, and nothing was sent.
    assert await sync_to_async(ToDeviceMessage.objects.filter(recipient_id=intruder).count)() == 0
    assert await sync_to_async(Envelope.objects.filter(room_id=room).count)() == 1
    # The other member's client reaches the same verdict on its own.
    await doctor.refresh_state(room)
    assert doctor.rooms[room].compromised
    await nurse.close()
    await doctor.close()


def swap_certificate(national_id: str) -> None:
    """Rewrite a practitioner's certificate with keys the server holds, properly signed
    by the log key (and self-signed by the new key), without touching the tree."""
    entry = LogEntry.objects.get(national_id=national_id, kind="certificate")
    original = json.loads(bytes(entry.leaf))["entry"]
    keys = DeviceKeyPair.generate()
    leaf = transparency.issue_certificate(
        log_key=log_signing_key(),
        national_id=national_id,
        device=original["device"],
        kind="device",
        keys=keys.public,
        self_signature=transparency.sign_registration(
            key_pair=keys, national_id=national_id, device=original["device"]
        ),
        issued_at=original["issued_at"],
    )
    LogEntry.objects.filter(pk=entry.pk).update(leaf=leaf, sign_key=b64u(keys.public.sign_key))
    Device.objects.filter(pk=original["device"]).update(
        public_keys={**keys.public.to_json(), "log_index": entry.index}
    )


async def test_a_device_key_substituted_by_the_server_is_refused(server, tmp_path):
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    await sync_to_async(swap_certificate)(DOCTOR)
    with pytest.raises(KeyTransparencyError):
        await nurse.create_room(kind="direct", members=[DOCTOR])
    assert await sync_to_async(Room.objects.count)() == 0
    await nurse.close()
    await doctor.close()


async def test_a_device_the_server_adds_for_someone_alerts_its_owner(server, tmp_path):
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="direct", members=[DOCTOR])
    await nurse.mark_verified(DOCTOR)  # safety numbers compared in person
    assert await nurse.check_verified_contact(DOCTOR)
    rogue, _ = await sync_to_async(rogue_device)(DOCTOR)  # in the log, as the server must
    alert = await next_alert(doctor)  # the live notice makes the doctor audit the log
    assert (alert.kind, str(rogue) in alert.detail) == ("unknown_device", True)
    assert await doctor.check_my_devices() == [rogue]
    # The nurse had verified the doctor: his device list changed, she is warned.
    assert not await nurse.check_verified_contact(DOCTOR)
    assert (await next_alert(nurse)).kind == "key_changed"
    # The room's signed state does not list it, so no key goes to it.
    await nurse.send_text(room, "pour le Dr Durand seulement")
    assert (await next_message(doctor)).text == "pour le Dr Durand seulement"
    assert await sync_to_async(ToDeviceMessage.objects.filter(recipient_id=rogue).count)() == 0
    await nurse.close()
    await doctor.close()


def replay(room_id: int, seq: int) -> None:
    """Store an old envelope again under a new sequence number."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room_id)
        old = Envelope.objects.get(room_id=room_id, seq=seq)
        room.last_seq += 1
        room.save(update_fields=["last_seq"])
        Envelope.objects.create(
            room=room,
            seq=room.last_seq,
            sender_device_id=old.sender_device_id,
            sender_practitioner_id=old.sender_practitioner_id,
            client_id="replayed",
            body=old.body,
            size=old.size,
            created_at_ms=old.created_at_ms,
        )


async def test_an_envelope_replayed_by_the_server_is_refused(server, tmp_path):
    nurse = await new_client(server.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(server.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="direct", members=[DOCTOR])
    await nurse.send_text(room, "Administrer 1 comprimé")
    assert (await next_message(doctor)).text == "Administrer 1 comprimé"
    await doctor.disconnect()
    await sync_to_async(replay)(room, 1)
    await doctor.connect()  # catches up, replay included
    alert = await next_alert(doctor)
    assert (alert.kind, alert.room) == ("replay", room)
    await nurse.send_text(room, "suite")
    assert (await next_message(doctor)).text == "suite"  # the replay was not shown
    assert doctor.messages.empty()
    await nurse.close()
    await doctor.close()
