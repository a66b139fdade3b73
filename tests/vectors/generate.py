"""Write the protocol's test vectors (tests/vectors/*.json).

Run ``python -m tests.vectors.generate`` from the repository root. Everything is
derived from fixed seeds, so the output is reproducible, except HPKE ciphertexts:
``cryptography`` draws the ephemeral key itself, so the HPKE vector is a decryption
vector (a second implementation must open it and find the given share).
Another implementation must reproduce every other byte exactly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import labels, merkle, ratchet, safety, shares, state
from e2ee.encoding import b64u, canonical_json
from e2ee.envelopes import OutboundSession
from e2ee.keys import DeviceKeyPair
from tests.vectors.keylog import keylog_vectors

HERE = Path(__file__).resolve().parent


def seed(name: str) -> bytes:
    """32 bytes derived from a name: SHA-256("relais test vector " || name)."""
    return hashlib.sha256(b"relais test vector " + name.encode()).digest()


def device(name: str) -> DeviceKeyPair:
    return DeviceKeyPair.from_private_bytes(sign=seed(name + "/sign"), kex=seed(name + "/kex"))


def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed("log"))


def device_json(name: str, keys: DeviceKeyPair) -> dict[str, Any]:
    sign_private, kex_private = keys.private_bytes()
    return {
        "name": name,
        "sign_private": b64u(sign_private),
        "kex_private": b64u(kex_private),
        **keys.public.to_json(),
    }


CANONICAL_INPUTS: list[Any] = [
    {"b": 1, "a": [True, False, None], "c": {"z": "", "y": -3}},
    {"texte": "Plaie à J+3, pansement refait ✓", "émoji": "🩺", "ctrl": 'a\nb\t"c\\'},
    {"n": 9007199254740991, "m": -9007199254740991, "list": [[], {}]},
    {"é": 1, "e": 2, "z": 3, "E": 4},
]

# The eight leaves of the Certificate Transparency reference tests.
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]


def canonical_vectors() -> dict[str, Any]:
    return {
        "cases": [
            {"input": value, "canonical": canonical_json(value).decode("utf-8")}
            for value in CANONICAL_INPUTS
        ],
        "rejected": [{"float": 1.5}, {"big": 9007199254740992}],
    }


def merkle_vectors() -> dict[str, Any]:
    leaves = [bytes.fromhex(leaf) for leaf in CT_LEAVES]
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    return {
        "leaves": CT_LEAVES,
        "leaf_hashes": [h.hex() for h in hashes],
        "roots": {str(n): merkle.root(hashes[:n]).hex() for n in range(9)},
        "inclusion": [
            {
                "index": index,
                "size": size,
                "proof": [p.hex() for p in merkle.inclusion_proof(hashes[:size], index)],
            }
            for size in range(1, 9)
            for index in range(size)
        ],
        "consistency": [
            {
                "old_size": old,
                "new_size": new,
                "proof": [p.hex() for p in merkle.consistency_proof(hashes[:new], old)],
            }
            for new in range(1, 9)
            for old in range(1, new + 1)
        ],
    }


def ratchet_vectors() -> dict[str, Any]:
    chain = seed("chain")
    steps = []
    for index in range(5):
        keys = ratchet.message_key(chain)
        steps.append(
            {
                "index": index,
                "chain_key": b64u(chain),
                "message_key": b64u(keys.key),
                "nonce": b64u(keys.nonce),
            }
        )
        chain = ratchet.next_chain_key(chain)
    return {"steps": steps}


ROOM = b64u(seed("room")[:16])
PEOPLE = {
    "nurse": ("810003456786", 7),
    "doctor": ("810001987659", 9),
    "pharmacist": ("810002765435", 11),
}


def _room_device(name: str) -> state.RoomDevice:
    national_id, number = PEOPLE[name]
    return state.RoomDevice(national_id=national_id, device=number, keys=device(name).public)


def chain_events() -> list[bytes]:
    nurse = device("nurse")
    author = PEOPLE["nurse"]
    create = state.sign_event(
        state=None,
        room=ROOM,
        author=author,
        key_pair=nurse,
        action="create",
        content=state.create_content(
            kind="care_team",
            members=[
                state.member_content(PEOPLE["nurse"][0], "admin", [_room_device("nurse")]),
                state.member_content(PEOPLE["doctor"][0], "member", [_room_device("doctor")]),
            ],
            policy=state.default_policy("care_team"),
        ),
        timestamp=1795392000000,
    )
    s0, _ = state.apply_event(None, create)
    add = state.sign_event(
        state=s0,
        room=ROOM,
        author=author,
        key_pair=nurse,
        action="add_member",
        content=state.member_content(
            PEOPLE["pharmacist"][0], "member", [_room_device("pharmacist")]
        ),
        timestamp=1795392001000,
    )
    s1, _ = state.apply_event(s0, add)
    remove = state.sign_event(
        state=s1,
        room=ROOM,
        author=author,
        key_pair=nurse,
        action="remove_member",
        content={"national_id": PEOPLE["pharmacist"][0]},
        timestamp=1795392002000,
    )
    return [create, add, remove]


def state_vectors() -> dict[str, Any]:
    events = chain_events()
    heads = []
    current = None
    for raw in events:
        current, event = state.apply_event(current, raw)
        heads.append(b64u(event.hash))
    assert current is not None
    doctor = device("doctor")
    forged = state.sign_event(
        state=current,
        room=ROOM,
        author=PEOPLE["doctor"],
        key_pair=doctor,
        action="add_member",
        content=state.member_content("810004123450", "member", []),
        timestamp=1795392003000,
    )
    return {
        "room": ROOM,
        "devices": [device_json(name, device(name)) for name in PEOPLE],
        "events": [raw.decode() for raw in events],
        "heads": heads,
        "rejected": [
            {
                "event": forged.decode(),
                "after": len(events),
                "code": "not_authorised",
                "why": "a member who is not an admin adds someone",
            },
        ],
    }


def envelope_vectors() -> dict[str, Any]:
    s = state.replay_chain(chain_events()[:2])
    nurse = device("nurse")
    session = OutboundSession(
        room=ROOM,
        sender=PEOPLE["nurse"],
        key_id=seed("key id")[:16],
        chain_key=seed("sender chain"),
        index=0,
        epoch=s.epoch,
        created_at_ms=0,
    )
    start = {"key_id": b64u(session.key_id), "chain_key": b64u(session.chain_key), "index": 0}
    contents = [
        {"type": "text", "text": "Bonjour, la plaie du talon est propre."},
        {"type": "text", "text": "Photo à suivre. Pansement hydrocolloïde ?"},
    ]
    envelopes = [session.encrypt(state=s, key_pair=nurse, content=c).decode() for c in contents]
    return {
        "chain_events": 2,
        "sender": list(PEOPLE["nurse"]),
        "session": start,
        "contents": contents,
        "envelopes": envelopes,
    }


def hpke_vectors() -> dict[str, Any]:
    s = state.replay_chain(chain_events()[:2])
    session = OutboundSession(
        room=ROOM,
        sender=PEOPLE["nurse"],
        key_id=seed("key id")[:16],
        chain_key=seed("sender chain"),
        index=0,
        epoch=s.epoch,
        created_at_ms=0,
    )
    message = shares.seal_share(
        session=session,
        epoch=s.epoch,
        key_pair=device("nurse"),
        recipient=_room_device("pharmacist"),
    )
    return {
        "suite": {"kem": "DHKEM(X25519, HKDF-SHA256)", "kdf": "HKDF-SHA256", "aead": "AES-256-GCM"},
        "info": labels.HPKE_INFO_SENDER_KEY.decode(),
        "chain_events": 2,
        "recipient": list(PEOPLE["pharmacist"]),
        "to_device_message": message.decode(),
        "share": shares.share_body(session, epoch=s.epoch, recipient=PEOPLE["pharmacist"]),
    }


def safety_vectors() -> dict[str, Any]:
    a_keys = [device("nurse").public.sign_key, device("nurse-phone").public.sign_key]
    b_keys = [device("doctor").public.sign_key]
    number = safety.safety_number(PEOPLE["nurse"][0], a_keys, PEOPLE["doctor"][0], b_keys)
    return {
        "first": {"national_id": PEOPLE["nurse"][0], "sign_keys": [b64u(k) for k in a_keys]},
        "second": {"national_id": PEOPLE["doctor"][0], "sign_keys": [b64u(k) for k in b_keys]},
        "digits": number.digits,
        "qr_payload": number.qr_payload,
    }


GENERATORS = {
    "canonical_json": canonical_vectors,
    "merkle": merkle_vectors,
    "keylog": keylog_vectors,
    "ratchet": ratchet_vectors,
    "room_state": state_vectors,
    "envelope": envelope_vectors,
    "hpke_share": hpke_vectors,
    "safety_number": safety_vectors,
}


def main() -> None:
    for name, generate in GENERATORS.items():
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(generate(), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {path.name}")


if __name__ == "__main__":
    main()
