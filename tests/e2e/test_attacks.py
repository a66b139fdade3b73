"""A dishonest server, played by this test with direct access to the server's database
and its log key, tries what the published Matrix attacks did: insert a member, swap a
device key, replay an envelope. Each time the SDK client detects it, refuses, and tells
its user; no key goes to the intruder."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction

from chat.models import Device, Envelope, Membership, Room, ToDeviceMessage
from chat.services.devices import do_issue_device_token
from client.directory import KeyTransparencyError
from client.events import SecurityError
from directory.models import Practitioner
from e2ee import transparency
from e2ee.encoding import b64u
from e2ee.keys import DeviceKeyPair, raw_public
from keylog.keys import log_public, log_signing_key
from keylog.models import LogEntry
from keylog.services import _append as operator_append
from keylog.services import chain_of
from tests import identities
from tests.e2e.forged_events import append_event, stored_state
from tests.e2e.sdk import new_client, next_alert, next_message

pytestmark = pytest.mark.e2e
NURSE, DOCTOR, PHYSIO = "810003456786", "810001987659", "810004123450"


def rogue_device(national_id: str) -> tuple[int, DeviceKeyPair]:
    """A device the server makes for someone and appends to its own log, signed with
    the log key. It cannot make the identity key's cross-signature: it signs with a key
    of its own instead."""
    keys = DeviceKeyPair.generate()
    device, _ = do_issue_device_token(
        practitioner=Practitioner.objects.get(pk=national_id), device_name="rogue"
    )
    operator_identity = Ed25519PrivateKey.generate()
    current = chain_of(national_id).identity_key
    common: dict[str, Any] = {"national_id": national_id, "device": device.pk, "kind": "device"}
    with transaction.atomic():
        if current is None:  # nobody published one yet: the operator publishes its own
            current = raw_public(operator_identity)
            operator_append(
                national_id=national_id,
                device_id=None,
                sign_key=None,
                record=lambda label, prev: transparency.IdentityEntry(
                    label=label,
                    prev=prev,
                    identity_key=current,
                    kind="practitioner",
                    binding=transparency.sign_identity_binding(operator_identity, national_id),
                    issued_at=1,
                ),
            )
        appended = operator_append(
            national_id=national_id,
            device_id=device.pk,
            sign_key=keys.public.sign_key,
            record=lambda label, prev: transparency.DeviceEntry(
                label=label,
                prev=prev,
                device=device.pk,
                kind="device",
                identity_key=current,
                sign_key=keys.public.sign_key,
                cross_sig=transparency.sign_device_certificate(
                    operator_identity, **common, sign_key=keys.public.sign_key
                ),
                self_sig=transparency.sign_device_registration(
                    keys.sign_private, **common, identity_key=current
                ),
                issued_at=1,
            ),
        )
    kex_signature = transparency.sign_kex_key(
        keys.sign_private, national_id=national_id, device=device.pk, kex_key=keys.public.kex_key
    )
    Device.objects.filter(pk=device.pk).update(
        public_keys={
            **keys.public.to_json(),
            "kex_signature": b64u(kex_signature),
            "identity_key": b64u(current),
            "log_index": appended.index,
        }
    )
    return device.pk, keys


def forge_member(room_id: int, how: str) -> int:
    """Append an add_member event the room's admins never signed, as the server would."""
    current = stored_state(room_id)
    device, keys = rogue_device(PHYSIO)
    member = identities.member(PHYSIO, "member", [identities.room_device(PHYSIO, device, keys)])
    nurse_device = next(iter(current.members[NURSE].devices))
    author, signer = (
        ((PHYSIO, device), keys)
        if how == "signed_by_intruder"
        else ((NURSE, nurse_device), DeviceKeyPair.generate())
    )
    with transaction.atomic():
        append_event(
            room_id,
            current,
            author=author,
            key_pair=signer,
            action="add_member",
            content=member,
            author_device_id=nurse_device,
        )
        Membership.objects.create(room_id=room_id, practitioner_id=PHYSIO, role="member")
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
    """Rewrite a practitioner's device entry with keys the server holds, signed by the
    log key, without touching the tree."""
    entry = LogEntry.objects.get(national_id=national_id, kind="device")
    record = transparency.parse_log_entry(bytes(entry.leaf), log_public=log_public())
    assert isinstance(record, transparency.DeviceEntry)
    keys = DeviceKeyPair.generate()
    forged = dataclasses.replace(record, sign_key=keys.public.sign_key)
    leaf = transparency.issue_entry(log_signing_key(), forged)
    LogEntry.objects.filter(pk=entry.pk).update(leaf=leaf, sign_key=b64u(keys.public.sign_key))
    Device.objects.filter(pk=record.device).update(
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
    # The doctor's device audits the log and finds a device key it does not know.
    assert await doctor.check_my_devices() == [rogue]
    alert = await next_alert(doctor)
    assert (alert.kind, str(rogue) in alert.detail) == ("unknown_device", True)
    # Without the doctor's identity key the server could not cross-sign it: nobody
    # counts it as the doctor's, so the nurse's verified contact is unchanged.
    assert await nurse.check_verified_contact(DOCTOR)
    assert rogue not in await nurse.directory.devices_of(DOCTOR)
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
