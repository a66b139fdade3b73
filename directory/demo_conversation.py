"""A demo conversation for the embedded first run, end-to-end encrypted for real.

Two correspondents of the demo alone, Dr Sophie Bernard (médecin) and Hugo Lambert
(kinésithérapeute), each get an identity key and a demo device, with keys made here and
certified in the key-transparency log as any client's would be. Sophie's device signs
the room's creation event; each device encrypts and signs its messages with its own
sender key (``e2ee.envelopes``); the envelopes go through the message path like any send.
The keys are then dropped: the server, and anyone calling the REST API, sees a room, its
members and opaque envelopes, never the text, which is the point.

The demo practitioners one logs in as (``directory.demo``) are left out: their first
device makes their identity. (Dr Bernard and Hugo Lambert already have one, whose key
nobody holds any more: a client says so if one tries to log in as them.)
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
from directory.demo import ensure_practitioners
from directory.models import Practitioner
from e2ee import state as chain
from e2ee import transparency
from e2ee.envelopes import OutboundSession
from e2ee.identity import IdentityKeyPair
from e2ee.keys import DeviceKeyPair
from keylog.services import do_certify_device, do_create_identity

DOCTOR, PHYSIO = "810005678908", "810006789019"
CORRESPONDENTS: list[dict[str, object]] = [
    {
        "national_id": DOCTOR,
        "civility": "DR",
        "first_name": "Sophie",
        "last_name": "Bernard",
        "profession_code": "10",
        "profession_label": "Médecin",
        "specialty_code": "SM26",
        "specialty_label": "Qualifié en Médecine Générale",
        "postcode": "69006",
        "town": "Lyon",
        "mssante_addresses": ["sophie.bernard@medecin.mssante.fr"],
    },
    {
        "national_id": PHYSIO,
        "civility": "M",
        "first_name": "Hugo",
        "last_name": "Lambert",
        "profession_code": "70",
        "profession_label": "Masseur-Kinésithérapeute",
        "postcode": "69100",
        "town": "Villeurbanne",
        "mssante_addresses": [],
    },
]
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


def _demo_device(national_id: str) -> tuple[DeviceIdentity, DeviceKeyPair, chain.RoomDevice]:
    """A demo device of ``national_id`` with a new identity key vouching for it, both in
    the log; the device as a room state lists it."""
    practitioner = Practitioner.objects.get(pk=national_id)
    device, _token = do_issue_device_token(practitioner=practitioner, device_name=DEVICE_NAME)
    keys = DeviceKeyPair.generate()
    owner = IdentityKeyPair.generate()
    identity = DeviceIdentity(device_id=device.pk, practitioner_id=national_id)
    do_create_identity(
        identity=identity, identity_key=owner.public, binding=owner.bind(national_id)
    )
    cross_sig = owner.certify(
        national_id=national_id, device=device.pk, kind="device", sign_key=keys.public.sign_key
    )
    do_certify_device(
        identity=identity,
        keys=keys.public,
        signature=transparency.sign_device_registration(
            keys.sign_private,
            national_id=national_id,
            device=device.pk,
            kind="device",
            identity_key=owner.public,
        ),
        cross_signature=cross_sig,
        kex_signature=transparency.sign_kex_key(
            keys.sign_private,
            national_id=national_id,
            device=device.pk,
            kex_key=keys.public.kex_key,
        ),
    )
    room_device = chain.RoomDevice(
        national_id=national_id,
        device=device.pk,
        sign_key=keys.public.sign_key,
        cross_sig=cross_sig,
        identity_key=owner.public,
    )
    return identity, keys, room_device


def create_demo_conversation() -> Room:
    """Create the demo conversation once; return it (synchronous code: a command)."""
    ensure_practitioners(CORRESPONDENTS)
    existing = demo_room()
    if existing is not None:
        return existing
    made = {nid: _demo_device(nid) for nid in (DOCTOR, PHYSIO)}
    devices = {nid: (identity, keys) for nid, (identity, keys, _) in made.items()}
    refs = {nid: device for nid, (_, _, device) in made.items()}
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
                chain.member_content(DOCTOR, "admin", refs[DOCTOR].identity_key, [refs[DOCTOR]]),
                chain.member_content(PHYSIO, "admin", refs[PHYSIO].identity_key, [refs[PHYSIO]]),
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
    sent: dict[str, int] = {}
    for number, (author, text) in enumerate(MESSAGES, start=1):
        sent[author] = sent.get(author, 0) + 1
        envelope = sessions[author].encrypt(
            state=room_state,
            key_pair=devices[author][1],
            content={"type": "text", "text": text},
            seq=sent[author],
            ts=now_ms,
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
