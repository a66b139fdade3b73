"""The operator is the adversary (docs/e2ee.md): with the database, the log key and the
code, and every byte between the server and each client (``tests.e2e.operator``), it
tries what the threat model says it cannot do. Each test plays one attack against a
real server process and real SDK clients and shows it refused or alerted, visibly to
the user, with nothing decrypted by the attacker."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async

from chat.models import Device, ToDeviceMessage
from client.events import SecurityError
from client.session import RelaisClient
from client.store import KeyStore, StoreError
from e2ee import kex, shares
from e2ee.encoding import unb64u
from e2ee.errors import CryptoError, CryptoErrorCode
from tests.e2e.operator import Operator
from tests.e2e.sdk import barrier, next_message, open_client, wait_alert

pytestmark = pytest.mark.e2e
NURSE, DOCTOR, PHYSIO = "810003456786", "810001987659", "810004123450"
DAY_MS = 24 * 3600 * 1000


class Clock:
    """A device's clock the test moves (the SDK takes it; nothing sleeps)."""

    def __init__(self) -> None:
        self.now = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def operator(server):
    proxy = await Operator.start(server.http_url)
    yield proxy
    await proxy.stop()


async def care_team(nurse: RelaisClient, *members: str) -> int:
    return await nurse.create_room(kind="care_team", members=list(members))


async def test_a_forged_removal_frame_and_a_rewritten_chain_are_refused(operator, tmp_path):
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse")
    doctor = await open_client(operator.url, tmp_path, DOCTOR, "doctor")
    room = await care_team(nurse, DOCTOR)
    await nurse.send_text(room, "Pansement refait")
    assert (await next_message(doctor)).text == "Pansement refait"

    # An unsigned frame saying "you were removed": the doctor's app fetches the chain,
    # finds no such removal, and keeps the room and its keys.
    forged = {
        "type": "membership",
        "room": room,
        "action": "removed",
        "practitioner": DOCTOR,
        "role": "member",
        "epoch": 1,
    }
    await operator.inject(doctor.api.token, forged)
    await barrier(doctor)
    assert not doctor.rooms[room].left
    assert doctor.rooms[room].inbound
    await doctor.send_text(room, "Toujours là")
    assert (await next_message(nurse)).text == "Toujours là"

    # The operator now shows the doctor another history for an epoch he verified (the
    # creation event replaced by one it made up from the nurse's later event).
    original = nurse.rooms[room].events[0].decode()

    def rewrite(method: str, path: str, answer: object) -> object:
        if path.endswith(f"/rooms/{room}/state") and isinstance(answer, dict):
            return {"events": [{"epoch": 0, "event": original.replace("care_team", "direct")}]}
        return answer

    operator.target(doctor.api.token).rewrite = rewrite
    with pytest.raises(SecurityError):
        await doctor.send_text(room, "ne doit pas partir")
    alert = await wait_alert(doctor, "bad_chain")
    assert alert.room == room
    await nurse.close()
    await doctor.close()


async def test_a_replayed_message_is_not_shown_twice(operator, tmp_path):
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse")
    doctor = await open_client(operator.url, tmp_path, DOCTOR, "doctor")
    room = await care_team(nurse, DOCTOR)
    seen: list[dict] = []

    async def record(frame: dict) -> list[dict]:
        if frame.get("type") == "message":
            seen.append(frame)
        return [frame]

    operator.target(doctor.api.token).frames = record
    await nurse.send_text(room, "Administrer 1 comprimé")
    assert (await next_message(doctor)).text == "Administrer 1 comprimé"
    replayed = {**seen[0], "seq": seen[0]["seq"] + 50}
    await operator.inject(doctor.api.token, replayed)
    alert = await wait_alert(doctor, "replay")
    assert alert.room == room
    await nurse.send_text(room, "suite")
    assert (await next_message(doctor)).text == "suite"
    assert doctor.messages.empty()
    await nurse.close()
    await doctor.close()


async def test_a_withheld_removal_is_detected_on_both_sides(operator, tmp_path):
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse")
    doctor_clock = Clock()
    doctor = await open_client(operator.url, tmp_path, DOCTOR, "doctor", clock=doctor_clock)
    physio = await open_client(operator.url, tmp_path, PHYSIO, "physio")
    room = await care_team(nurse, DOCTOR, PHYSIO)
    await nurse.send_text(room, "bonjour")
    assert (await next_message(doctor)).text == "bonjour"
    epoch = nurse.rooms[room].state.epoch

    # From now on the operator hides every newer room state from the doctor.
    def hide(method: str, path: str, answer: object) -> object:
        if path.endswith(f"/rooms/{room}/state") and isinstance(answer, dict):
            return {"events": [e for e in answer["events"] if e["epoch"] <= epoch]}
        return answer

    async def drop_state_frames(frame: dict) -> list[dict]:
        return [] if frame.get("type") in ("membership", "room_state") else [frame]

    rules = operator.target(doctor.api.token)
    rules.rewrite = hide
    rules.frames = drop_state_frames
    await nurse.remove_member(room, PHYSIO)

    # The doctor, shown the old state, writes five minutes later: the nurse, who knows
    # the removal, sees the message flagged.
    doctor_clock.now += 5 * 60 * 1000
    await doctor.send_text(room, "le kiné peut-il lire ceci ?")
    message = await next_message(nurse)
    assert message.stale_state
    assert (await wait_alert(nurse, "stale_state")).room == room

    # The nurse writes from the new state: the doctor sees that the server withholds it,
    # and stops sending.
    await nurse.send_text(room, "état à jour")
    assert (await wait_alert(doctor, "withheld_state")).room == room
    with pytest.raises(SecurityError):
        await doctor.send_text(room, "refusé")
    for client in (nurse, doctor, physio):
        await client.close()


async def test_a_reordered_or_dropped_message_is_flagged(operator, tmp_path):
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse")
    clock = Clock()
    doctor = await open_client(operator.url, tmp_path, DOCTOR, "doctor", clock=clock)
    room = await care_team(nurse, DOCTOR)
    await nurse.send_text(room, "bonjour")
    assert (await next_message(doctor)).text == "bonjour"
    held: list[dict] = []

    async def swap_then_drop(frame: dict) -> list[dict]:
        if frame.get("type") != "message":
            return [frame]
        held.append(frame)
        if len(held) == 1:
            return []  # held back
        if len(held) == 2:
            return [held[1], held[0]]  # the second first
        if len(held) == 3:
            return []  # the third is dropped
        return [frame]

    operator.target(doctor.api.token).frames = swap_then_drop
    await nurse.send_text(room, "Administrer 10 UI d'insuline")
    await nurse.send_text(room, "ANNULÉ, ne pas injecter")
    first = await next_message(doctor)
    second = await next_message(doctor)
    assert (first.text, first.late) == ("ANNULÉ, ne pas injecter", False)
    assert (second.text, second.late) == ("Administrer 10 UI d'insuline", True)
    assert second.sender_seq < first.sender_seq  # shown in the sender's order
    assert (await wait_alert(doctor, "reordered")).room == room

    await nurse.send_text(room, "dropped by the operator")
    await nurse.send_text(room, "suivant")
    assert (await next_message(doctor)).text == "suivant"
    assert await doctor.check_gaps() == []  # not yet: it may still be on its way
    clock.now += 61_000
    missing = await doctor.check_gaps()
    assert [(r, s[0]) for r, s, _ in missing] == [(room, NURSE)]
    assert (await wait_alert(doctor, "missing_message")).room == room
    await nurse.close()
    await doctor.close()


async def test_a_key_store_copied_before_a_rotation_opens_nothing_after_it(operator, tmp_path):
    nurse_clock, doctor_clock = Clock(), Clock()
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse", clock=nurse_clock)
    doctor = await open_client(operator.url, tmp_path, DOCTOR, "doctor", clock=doctor_clock)
    room = await care_team(nurse, DOCTOR)
    await nurse.send_text(room, "avant la copie")
    assert (await next_message(doctor)).text == "avant la copie"

    # A thief copies the doctor's key store file (and knows its passphrase); the operator
    # keeps every to-device message that reaches the doctor from now on.
    copy = tmp_path / "stolen.store"
    shutil.copy(tmp_path / "doctor.store", copy)
    captured: list[bytes] = []

    def keep_rest(method: str, path: str, answer: object) -> object:
        if path.endswith("/devices/messages") and isinstance(answer, dict):
            captured.extend(unb64u(m["body"]) for m in answer.get("messages", []))
        return answer

    async def keep_frames(frame: dict) -> list[dict]:
        if frame.get("type") == "to_device":
            captured.append(unb64u(frame["body"]))
        return [frame]

    rules = operator.target(doctor.api.token)
    rules.rewrite, rules.frames = keep_rest, keep_frames

    # A week later: the doctor's device makes a new key-agreement key, the nurse's
    # sender key is due for rotation; two more days and the old private key is gone.
    for clock in (nurse_clock, doctor_clock):
        clock.now += 8 * DAY_MS
    assert await doctor.rotate_keys_if_due()
    doctor_clock.now += 3 * DAY_MS
    await doctor.rotate_keys_if_due()
    assert doctor.device_keys.kex_private(1) is None
    await nurse.send_text(room, "après la rotation")
    assert (await next_message(doctor)).text == "après la rotation"

    # The thief, with the copy and everything the operator kept, tries the new share.
    stolen = KeyStore.open(copy, "correct horse battery staple")
    old_keys = RelaisClient(server=operator.url, store=stolen).device_keys
    old_private = old_keys.kex_private(1)
    assert old_private is not None
    newest = [b for b in captured if shares.share_kex_serial(b) >= 2]
    assert newest, "the nurse's new sender key went to the new key-agreement key"
    for body in newest:
        with pytest.raises(CryptoError) as refused:
            shares.open_share(message=body, kex_private=old_private, me=doctor.me)
        assert refused.value.code == CryptoErrorCode.DECRYPT_FAILED
    stolen.close()
    await nurse.close()
    await doctor.close()


async def test_two_processes_cannot_open_one_key_store(tmp_path):
    first = KeyStore.open(tmp_path / "one.store", "passphrase", n=2**10)
    with pytest.raises(StoreError, match="another program"):
        KeyStore.open(tmp_path / "one.store", "passphrase", n=2**10)
    first.close()
    KeyStore.open(tmp_path / "one.store", "passphrase", n=2**10).close()


async def test_an_expired_key_agreement_key_is_refused_and_a_lower_serial_too(tmp_path):
    from e2ee.keys import DeviceKeyPair

    keys = DeviceKeyPair.generate()
    now = int(time.time() * 1000)
    raw = kex.publish(
        key_pair=keys,
        national_id=NURSE,
        device=3,
        kex_private=keys.kex_private,
        serial=1,
        now_ms=now,
    )
    with pytest.raises(CryptoError) as refused:
        kex.verify_kex(
            raw,
            national_id=NURSE,
            device=3,
            sign_key=keys.public.sign_key,
            now_ms=now + kex.LIFETIME_MS,
        )
    assert refused.value.code == CryptoErrorCode.EXPIRED_KEY


async def test_a_revoked_device_gets_nothing_new_and_the_room_keeps_working(operator, tmp_path):
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse")
    phone = await open_client(operator.url, tmp_path, DOCTOR, "doctor-phone")
    laptop = await open_client(operator.url, tmp_path, DOCTOR, "doctor-laptop", linked_from=phone)
    room = await care_team(nurse, DOCTOR)
    assert set(nurse.rooms[room].state.members[DOCTOR].devices) == {
        phone.device_id,
        laptop.device_id,
    }
    await nurse.send_text(room, "avant")
    assert (await next_message(phone)).text == "avant"
    assert (await next_message(laptop)).text == "avant"

    # The phone is lost: the doctor revokes it from the laptop.
    lost = phone.device_id
    await laptop.api.call("DELETE", f"devices/{lost}", json={"reason": "lost"})
    await wait_alert(nurse, "device_revoked")
    await barrier(laptop)
    await laptop.refresh_state(room)
    assert lost not in laptop.rooms[room].state.members[DOCTOR].devices
    revoked_at = await sync_to_async(lambda: Device.objects.get(pk=lost).revoked_at)()
    await nurse.send_text(room, "après la perte du téléphone")
    assert (await next_message(laptop)).text == "après la perte du téléphone"
    after = await sync_to_async(
        ToDeviceMessage.objects.filter(
            recipient_id=lost, created_at_ms__gte=int(revoked_at.timestamp() * 1000)
        ).count
    )()
    assert after == 0
    await nurse.close()
    await laptop.close()
    await phone.close()


async def test_a_device_linked_by_code_reads_the_history_and_a_swapped_request_is_refused(
    operator, tmp_path
):
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse")
    phone = await open_client(operator.url, tmp_path, DOCTOR, "doctor-phone")
    room = await care_team(nurse, DOCTOR)
    await nurse.send_text(room, "historique 1")
    await nurse.send_text(room, "historique 2")
    assert (await next_message(phone)).text == "historique 1"

    laptop = await open_client(operator.url, tmp_path, DOCTOR, "doctor-laptop", linked_from=phone)
    texts: set[str] = set()
    async with asyncio.timeout(20):
        while len(texts) < 2:
            texts.add((await next_message(laptop)).text)
    assert texts == {"historique 1", "historique 2"}
    # Same identity key, so the nurse's safety number with the doctor did not change.
    assert (await nurse.safety_number(DOCTOR)).digits == (await phone.safety_number(NURSE)).digits
    await nurse.close()
    await phone.close()
    await laptop.close()


async def test_recovery_with_the_code_keeps_the_identity_and_the_history(operator, tmp_path):
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse")
    phone, code = await open_client(operator.url, tmp_path, DOCTOR, "doctor-phone", with_code=True)
    room = await care_team(nurse, DOCTOR)
    before = (await nurse.safety_number(DOCTOR)).digits
    await nurse.send_text(room, "avant la perte")
    assert (await next_message(phone)).text == "avant la perte"
    await phone.history.upload(phone.api, phone.account.recovery_key)
    await phone.close()
    await asyncio.to_thread((tmp_path / "doctor-phone.store").unlink)  # every device lost

    restored = await open_client(
        operator.url, tmp_path, DOCTOR, "doctor-new", recovery_code=str(code)
    )
    assert (await next_message(restored)).text == "avant la perte"
    assert (await nurse.safety_number(DOCTOR)).digits == before
    await nurse.send_text(room, "après")
    assert (await next_message(restored)).text == "après"
    await nurse.close()
    await restored.close()


def rogue_identity(national_id: str) -> int:
    """The operator, with the log key, publishes an identity key of its own for someone
    (as an identity reset would look) and a real device of its making under it, with a
    published key-agreement key: the device a careless client would seal keys to."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from django.db import transaction

    from chat.services.devices import do_issue_device_token
    from directory.models import Practitioner
    from e2ee import transparency
    from e2ee.keys import DeviceKeyPair, raw_public
    from keylog.services import _append as operator_append
    from keyring.models import PublishedKexKey

    rogue = Ed25519PrivateKey.generate()
    keys = DeviceKeyPair.generate()
    device, _ = do_issue_device_token(
        practitioner=Practitioner.objects.get(pk=national_id), device_name="rogue"
    )
    common: dict[str, Any] = {"national_id": national_id, "device": device.pk, "kind": "device"}
    with transaction.atomic():
        operator_append(
            national_id=national_id,
            device_id=None,
            sign_key=None,
            record=lambda label, prev: transparency.IdentityEntry(
                label,
                prev,
                raw_public(rogue),
                "practitioner",
                transparency.sign_identity_binding(rogue, national_id),
                1,
            ),
        )
        operator_append(
            national_id=national_id,
            device_id=device.pk,
            sign_key=keys.public.sign_key,
            record=lambda label, prev: transparency.DeviceEntry(
                label,
                prev,
                device.pk,
                "device",
                raw_public(rogue),
                keys.public.sign_key,
                transparency.sign_device_certificate(
                    rogue, **common, sign_key=keys.public.sign_key
                ),
                transparency.sign_device_registration(
                    keys.sign_private, **common, identity_key=raw_public(rogue)
                ),
                1,
            ),
        )
        now = int(time.time() * 1000)
        PublishedKexKey.objects.create(
            device=device,
            serial=1,
            document=kex.publish(
                key_pair=keys,
                national_id=national_id,
                device=device.pk,
                kex_private=keys.kex_private,
                serial=1,
                now_ms=now,
            ),
            expires_at_ms=now + kex.LIFETIME_MS,
        )
    return int(device.pk)


async def test_a_rogue_identity_for_a_verified_contact_is_blocked_and_gets_no_key(
    operator, tmp_path
):
    nurse = await open_client(operator.url, tmp_path, NURSE, "nurse")
    doctor = await open_client(operator.url, tmp_path, DOCTOR, "doctor")
    room = await care_team(nurse, DOCTOR)
    await nurse.mark_verified(DOCTOR)  # safety numbers compared in person
    rogue = await sync_to_async(rogue_identity)(DOCTOR)

    # A new room with the doctor: the nurse's app sees another identity key for a
    # contact she verified, says so, and refuses.
    with pytest.raises(SecurityError):
        await nurse.create_room(kind="direct", members=[DOCTOR])
    assert (await wait_alert(nurse, "key_changed")).kind == "key_changed"
    assert not await nurse.check_verified_contact(DOCTOR)
    # In the existing room, the state names the doctor's real identity key: the rogue
    # device is not in it and gets nothing.
    await nurse.send_text(room, "toujours pour le vrai Dr Durand")
    queued = ToDeviceMessage.objects.filter(recipient_id=rogue)
    assert await sync_to_async(queued.count)() == 0
    # The doctor's own device sees an identity key it does not hold under its label.
    await doctor.check_my_devices()
    assert (await wait_alert(doctor, "unknown_identity_key")).kind == "unknown_identity_key"
    await nurse.close()
    await doctor.close()


async def test_a_link_request_swapped_by_the_operator_is_refused(operator, tmp_path):
    from client import registration
    from e2ee.encoding import b64u
    from e2ee.keys import DeviceKeyPair

    phone = await open_client(operator.url, tmp_path, DOCTOR, "doctor-phone")
    laptop = RelaisClient(
        server=operator.url,
        store=KeyStore.open(tmp_path / "laptop.store", "correct horse battery staple", n=2**10),
    )
    login = await laptop.api.dev_login(DOCTOR, "laptop")
    pending = await registration.start_link(
        laptop, token=login["token"], device=login["device"], national_id=DOCTOR
    )
    # The operator shows the phone a request with its own keys in place of the laptop's.
    rogue = DeviceKeyPair.generate()

    def swap(method: str, path: str, answer: object) -> object:
        if "/devices/link-requests/" in path and isinstance(answer, dict):
            request = json.loads(answer["request"])
            request["sign_key"] = b64u(rogue.public.sign_key)
            request["kex_key"] = b64u(rogue.public.kex_key)
            answer["request"] = json.dumps(request, sort_keys=True, separators=(",", ":"))
        return answer

    operator.target(phone.api.token).rewrite = swap

    async def yes(device: int, name: str) -> bool:
        return True

    with pytest.raises(SecurityError, match="does not match"):
        await registration.approve_link(phone, pending.code.short_code, confirm=yes)
    await phone.close()
    await laptop.close()
