"""A demo conversation for the embedded first run, end-to-end encrypted for real.

Dr Paul Durand and Élodie Lefèvre (kinésithérapeute) each get a demo device, with keys
made here and certified in the key-transparency log as any client's would be. Paul's
device signs the room's creation event; each device encrypts and signs its messages with
its own sender key (``e2ee.envelopes``); the envelopes go through the message path like
any send. The keys are then dropped: the server, and anyone calling the REST API, sees
a room, its members and opaque envelopes, never the text, which is the point.

The nurse and the pharmacist of the README's CLI example are left out, so that their
CLI devices are not told about devices they did not link.
"""

from __future__ import annotations

import asyncio
import base64
import time

from chat.clock import SYSTEM_CLOCK
from chat.fanout import FanoutHub
from chat.models import Device, Room
from chat.runtime import build_store
from chat.services.devices import DeviceIdentity, do_issue_device_token
from chat.services.messages import do_send
from chat.services.rooms import do_create_room
from directory.models import Practitioner
from e2ee import state as chain
from e2ee.envelopes import OutboundSession
from e2ee.keys import DeviceKeyPair
from e2ee.transparency import sign_registration
from keylog.services import do_certify_device

DOCTOR, PHYSIO = "810001987659", "810004123450"
DEVICE_NAME = "démo (seed_demo)"
MESSAGES = [
    (
        DOCTOR,
        "Bonjour, je vous adresse un patient pour la rééducation du genou droit "
        "après arthroscopie ; le compte rendu suit.",
    ),
    (PHYSIO, "Bien reçu, première séance jeudi. Je vous fais un retour après le bilan."),
    (DOCTOR, "Parfait, merci !"),
]


def demo_room() -> Room | None:
    """The demo conversation, if ``create_demo_conversation`` made it already."""
    if not Device.objects.filter(practitioner_id=DOCTOR, name=DEVICE_NAME).exists():
        return None
    return Room.objects.filter(
        created_by_id=DOCTOR, kind="direct", memberships__practitioner_id=PHYSIO
    ).first()


def _demo_device(national_id: str) -> tuple[DeviceIdentity, DeviceKeyPair]:
    practitioner = Practitioner.objects.get(pk=national_id)
    device, _token = do_issue_device_token(practitioner=practitioner, device_name=DEVICE_NAME)
    keys = DeviceKeyPair.generate()
    identity = DeviceIdentity(device_id=device.pk, practitioner_id=national_id)
    do_certify_device(
        identity=identity,
        keys=keys.public,
        signature=sign_registration(key_pair=keys, national_id=national_id, device=device.pk),
    )
    return identity, keys


def create_demo_conversation() -> Room:
    """Create the demo conversation once; return it (synchronous code: a command)."""
    existing = demo_room()
    if existing is not None:
        return existing
    devices = {nid: _demo_device(nid) for nid in (DOCTOR, PHYSIO)}
    refs = {
        nid: chain.RoomDevice(national_id=nid, device=identity.device_id, keys=keys.public)
        for nid, (identity, keys) in devices.items()
    }
    doctor_identity, doctor_keys = devices[DOCTOR]
    event = chain.sign_event(
        state=None,
        room=chain.new_room_id(),
        author=(DOCTOR, doctor_identity.device_id),
        key_pair=doctor_keys,
        action="create",
        content=chain.create_content(
            kind="direct",
            members=[
                chain.member_content(DOCTOR, "admin", [refs[DOCTOR]]),
                chain.member_content(PHYSIO, "admin", [refs[PHYSIO]]),
            ],
            policy=chain.default_policy("direct"),
        ),
        timestamp=int(time.time() * 1000),
    )
    room = do_create_room(identity=doctor_identity, event=event)
    room_state, _ = chain.apply_event(None, event)
    now_ms = int(time.time() * 1000)
    sessions = {
        nid: OutboundSession.create(
            room=room_state.room, sender=refs[nid].ref, epoch=room_state.epoch, now_ms=now_ms
        )
        for nid in devices
    }
    bodies = []
    for number, (author, text) in enumerate(MESSAGES, start=1):
        envelope = sessions[author].encrypt(
            state=room_state, key_pair=devices[author][1], content={"type": "text", "text": text}
        )
        bodies.append((author, f"demo-{number}", base64.urlsafe_b64encode(envelope).decode()))

    async def send_all() -> None:
        # The message path's store; a hub of this command alone (no device is connected
        # to it: running servers learn of the room from the database).
        hub = FanoutHub()
        await hub.start()
        store = build_store(SYSTEM_CLOCK)
        try:
            for author, client_id, body in bodies:
                await do_send(
                    store=store,
                    hub=hub,
                    identity=devices[author][0],
                    room_id=room.pk,
                    client_id=client_id,
                    body_text=body,
                )
        finally:
            await store.close()
            await hub.close()

    asyncio.run(send_all())
    room.refresh_from_db()
    return room
