"""Write the protocol's test vectors (tests/vectors/*.json).

Run ``python -m tests.vectors.generate [name…]`` from the repository root (the files
with ciphertexts, ``RANDOMISED``, are rewritten only when named). Everything is
derived from fixed seeds, so the output is reproducible, except HPKE ciphertexts:
``cryptography`` draws the ephemeral key itself, so the HPKE vector is a decryption
vector (a second implementation must open it and find the given share).
Another implementation must reproduce every other byte exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from client.history import HistoryKey, RoomProfileKey, seal_transfer, transfer_body
from e2ee import kex, labels, linking, merkle, profile, ratchet, recovery, safety, shares, state
from e2ee.encoding import b64u, canonical_json, signing_input
from e2ee.envelopes import OutboundSession
from e2ee.identity import DeviceKind, IdentityKeyPair
from e2ee.keys import DeviceKeyPair
from e2ee.profile import ProfileKey
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
NOW = 1795392000000


def identity(name: str) -> IdentityKeyPair:
    return IdentityKeyPair.from_private_bytes(seed(name + "/identity"))


def _room_device(name: str, *, kind: DeviceKind = "device") -> state.RoomDevice:
    national_id, number = PEOPLE[name]
    owner = identity(name)
    sign_key = device(name).public.sign_key
    return state.RoomDevice(
        national_id=national_id,
        device=number,
        sign_key=sign_key,
        cross_sig=owner.certify(
            national_id=national_id, device=number, kind=kind, sign_key=sign_key
        ),
        identity_key=owner.public,
    )


def _member(name: str, role: str) -> dict[str, Any]:
    return state.member_content(PEOPLE[name][0], role, identity(name).public, [_room_device(name)])


def identity_json(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "national_id": PEOPLE[name][0],
        "identity_private": b64u(identity(name).private_bytes()),
        "identity_key": b64u(identity(name).public),
    }


def chain_events() -> list[bytes]:
    nurse = device("nurse")
    author = PEOPLE["nurse"]
    log = state.log_gossip(5, seed("log root"))
    create = state.sign_event(
        state=None,
        room=ROOM,
        author=author,
        key_pair=nurse,
        action="create",
        content=state.create_content(
            kind="care_team",
            members=[_member("nurse", "admin"), _member("doctor", "member")],
            policy=state.default_policy("care_team"),
        ),
        timestamp=NOW,
        log=log,
    )
    s0, _ = state.apply_event(None, create)
    add = state.sign_event(
        state=s0,
        room=ROOM,
        author=author,
        key_pair=nurse,
        action="add_member",
        content=_member("pharmacist", "member"),
        timestamp=NOW + 1000,
        log=log,
    )
    s1, _ = state.apply_event(s0, add)
    remove = state.sign_event(
        state=s1,
        room=ROOM,
        author=author,
        key_pair=nurse,
        action="remove_member",
        content={"national_id": PEOPLE["pharmacist"][0]},
        timestamp=NOW + 2000,
        log=None,
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
        content=state.member_content("810004123450", "member", identity("physio").public, []),
        timestamp=NOW + 3000,
    )
    # The nurse (an admin) signs in a device for the doctor that the doctor's identity
    # key never vouched for: the operator's device, certified by another identity key.
    rogue = device("rogue")
    rogue_entry = {
        "device": 66,
        "sign_key": b64u(rogue.public.sign_key),
        "cross_sig": b64u(
            identity("rogue").certify(
                national_id=PEOPLE["doctor"][0],
                device=66,
                kind="device",
                sign_key=rogue.public.sign_key,
            )
        ),
    }
    unvouched = state.sign_event(
        state=current,
        room=ROOM,
        author=PEOPLE["nurse"],
        key_pair=device("nurse"),
        action="add_device",
        content={"national_id": PEOPLE["doctor"][0], "device": rogue_entry},
        timestamp=NOW + 3000,
    )
    # The doctor's new laptop, vouched for by his identity key, adds itself.
    laptop = device("doctor-laptop")
    laptop_entry = {
        "device": 12,
        "sign_key": b64u(laptop.public.sign_key),
        "cross_sig": b64u(
            identity("doctor").certify(
                national_id=PEOPLE["doctor"][0],
                device=12,
                kind="device",
                sign_key=laptop.public.sign_key,
            )
        ),
    }
    self_added = state.sign_event(
        state=current,
        room=ROOM,
        author=(PEOPLE["doctor"][0], 12),
        key_pair=laptop,
        action="add_device",
        content={"national_id": PEOPLE["doctor"][0], "device": laptop_entry},
        timestamp=NOW + 3000,
    )
    after_laptop, event = state.apply_event(current, self_added)
    archive_to_members = policy_vectors(after_laptop, len(events) + 1)
    return {
        "room": ROOM,
        "devices": [device_json(name, device(name)) for name in [*PEOPLE, "doctor-laptop"]],
        "identities": [identity_json(name) for name in PEOPLE],
        "events": [raw.decode() for raw in [*events, self_added]],
        "heads": [*heads, b64u(event.hash)],
        "final_epoch": after_laptop.epoch,
        "rejected": [
            {
                "event": forged.decode(),
                "after": len(events),
                "code": "not_authorised",
                "why": "a member who is not an admin adds someone",
            },
            {
                "event": unvouched.decode(),
                "after": len(events),
                "code": "bad_signature",
                "why": "an admin adds a device the member's identity key did not vouch for",
            },
        ],
        "archive_to_members": archive_to_members,
    }


def policy_vectors(current: state.RoomState, after: int) -> dict[str, Any]:
    """The optional ``archive_to_members`` policy field (protocol §10.5): the nurse (an
    admin) turns it on after the chain's ``after`` events; written only when true, so
    ``false`` and any other value are refused."""
    policy = replace(state.default_policy("care_team"), archive_to_members=True)

    def set_policy(body: dict[str, Any]) -> bytes:
        return state.sign_event(
            state=current,
            room=ROOM,
            author=PEOPLE["nurse"],
            key_pair=device("nurse"),
            action="set_policy",
            content={"policy": body},
            timestamp=NOW + 4000,
        )

    raw = set_policy(policy.to_json())
    after_policy, event = state.apply_event(current, raw)
    assert after_policy.policy == policy
    base = state.default_policy("care_team").to_json()
    return {
        "after": after,
        "policy": policy.to_json(),
        "event": raw.decode(),
        "head": b64u(event.hash),
        "refused": [
            {
                "event": set_policy({**base, "archive_to_members": value}).decode(),
                "code": "bad_encoding",
                "why": why,
            }
            for value, why in [
                (False, "archive_to_members false (only true is written)"),
                ("yes", "archive_to_members not a boolean"),
            ]
        ]
        + [
            {
                "event": set_policy({**base, "archive_to_organisation": True}).decode(),
                "code": "bad_encoding",
                "why": "an unknown policy field",
            }
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
    log = state.log_gossip(5, seed("log root"))
    envelopes = [
        session.encrypt(
            state=s, key_pair=nurse, content=c, seq=i + 1, ts=NOW + i * 1000, log=log
        ).decode()
        for i, c in enumerate(contents)
    ]
    return {
        "chain_events": 2,
        "sender": list(PEOPLE["nurse"]),
        "session": start,
        "contents": contents,
        "seqs": [1, 2],
        "timestamps": [NOW, NOW + 1000],
        "envelopes": envelopes,
    }


def kex_vectors() -> dict[str, Any]:
    pharmacist = device("pharmacist")
    raw = kex.publish(
        key_pair=pharmacist,
        national_id=PEOPLE["pharmacist"][0],
        device=PEOPLE["pharmacist"][1],
        kex_private=pharmacist.kex_private,
        serial=1,
        now_ms=NOW,
    )
    return {"device": device_json("pharmacist", pharmacist), "published": raw.decode(), "now": NOW}


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
    pharmacist = device("pharmacist")
    published = kex.verify_kex(
        kex_vectors()["published"].encode(),
        national_id=PEOPLE["pharmacist"][0],
        device=PEOPLE["pharmacist"][1],
        sign_key=pharmacist.public.sign_key,
        now_ms=NOW,
    )
    profile_key = ProfileKey(key_id=seed("profile key id")[:16], key=seed("profile key"))
    message = shares.seal_share(
        session=session,
        epoch=s.epoch,
        key_pair=device("nurse"),
        recipient=PEOPLE["pharmacist"],
        kex=published,
        profile_key=profile_key,
    )
    return {
        "suite": {"kem": "DHKEM(X25519, HKDF-SHA256)", "kdf": "HKDF-SHA256", "aead": "AES-256-GCM"},
        "info": labels.HPKE_INFO_SENDER_KEY.decode(),
        "chain_events": 2,
        "recipient": list(PEOPLE["pharmacist"]),
        "to_device_message": message.decode(),
        "share": shares.share_body(
            session, epoch=s.epoch, recipient=PEOPLE["pharmacist"], profile_key=profile_key
        ),
    }


def profile_vectors() -> dict[str, Any]:
    key = ProfileKey(key_id=seed("profile key id")[:16], key=seed("profile key"))
    content = {"title": "Mme D. — plaie du talon gauche", "notes": "Passage IDE deux fois par jour"}
    sealed = profile.encrypt_profile(room=ROOM, version=1, key=key, profile=content)
    return {
        "room": ROOM,
        "version": 1,
        "key_id": b64u(key.key_id),
        "key": b64u(key.key),
        "profile": content,
        "ct": b64u(sealed),
        "note": "the nonce is random: a decryption vector",
    }


def linking_vectors() -> dict[str, Any]:
    new_device = device("nurse-laptop")
    request = {
        "v": 2,
        "type": "link_request",
        "national_id": PEOPLE["nurse"][0],
        "device": 21,
        "sign_key": b64u(new_device.public.sign_key),
        "kex_key": b64u(new_device.public.kex_key),
        "nonce": b64u(seed("link nonce")[:16]),
    }
    code = linking.LinkCode(link_id=seed("link id")[:5], commitment=linking.commitment(request))
    return {
        "request": request,
        "commitment": b64u(code.commitment),
        "link_id": b64u(code.link_id),
        "qr_payload": code.qr_payload,
        "short_code": code.short_code,
    }


def recovery_vectors() -> dict[str, Any]:
    code = recovery.RecoveryCode(seed("recovery")[:20])
    secret = seed("account secret")
    return {
        "code": str(code),
        "recovery_public": b64u(code.public_key()),
        "account_secret": b64u(secret),
        "account_keys": {
            purpose: b64u(recovery.account_key(secret, purpose))
            for purpose in ("billing-pseudonym", "billing-ledger")
        },
    }


def history_key_vectors() -> dict[str, Any]:
    """A care-team room gets its profile (the nurse, an admin, signs ``set_profile``
    after the room-state chain); the nurse's phone then links her laptop (device 21 of
    the linking vectors) and forwards a history key and the room's profile key, and
    backs the profile key up sealed to the recovery code (protocol §10.9). The profile's
    nonce is fixed here so the event reproduces; the HPKE ciphertexts (``message``,
    ``backup.sealed``) are decryption vectors."""
    events = state_vectors()["events"]
    before = state.replay_chain([e.encode() for e in events])
    key = ProfileKey(key_id=seed("history profile key id")[:16], key=seed("history profile key"))
    content = {"title": "M. L. — ulcère jambe droite", "notes": "Compression le matin"}
    nonce = seed("history profile nonce")[:12]
    aad = signing_input(
        labels.PROFILE_AAD, {"room": ROOM, "version": 1, "key_id": b64u(key.key_id)}
    )
    ct = nonce + AESGCM(key.key).encrypt(nonce, canonical_json(content), aad)
    raw = state.sign_event(
        state=before,
        room=ROOM,
        author=PEOPLE["nurse"],
        key_pair=device("nurse"),
        action="set_profile",
        content={"version": 1, "key_id": b64u(key.key_id), "ct": b64u(ct)},
        timestamp=NOW + 5000,
    )
    after, event = state.apply_event(before, raw)
    assert after.profile is not None
    profile_key = RoomProfileKey(room=ROOM, version=1, key=key)
    history_key = HistoryKey(
        room=ROOM,
        sender=PEOPLE["nurse"],
        key_id=seed("key id")[:16],
        index=0,
        chain_key=seed("sender chain"),
        epoch=1,
    )
    nurse, laptop = device("nurse"), device("nurse-laptop")
    recipient = (PEOPLE["nurse"][0], 21)
    body = transfer_body(
        keys=[history_key], sender=PEOPLE["nurse"], recipient=recipient, profile_keys=[profile_key]
    )
    alone = transfer_body(keys=[history_key], sender=PEOPLE["nurse"], recipient=recipient)
    code = recovery.RecoveryCode(seed("recovery")[:20])
    other_room = b64u(seed("other room")[:16])
    wrong = ProfileKey(key_id=key.key_id, key=seed("wrong profile key"))
    return {
        "after": len(events),
        "set_profile": raw.decode(),
        "head": b64u(event.hash),
        "profile": content,
        "devices": [device_json("nurse", nurse), device_json("nurse-laptop", laptop)],
        "sender": list(PEOPLE["nurse"]),
        "recipient": list(recipient),
        "history_key": history_key.to_json(),
        "history_key_id": history_key.id,
        "profile_key": profile_key.to_json(),
        "transfer": canonical_json(body).decode(),
        "sig": b64u(nurse.sign(labels.HISTORY, body)),
        "transfer_without_profile_keys": canonical_json(alone).decode(),
        "sig_without_profile_keys": b64u(nurse.sign(labels.HISTORY, alone)),
        "message": seal_transfer(
            keys=[history_key],
            sender=PEOPLE["nurse"],
            key_pair=nurse,
            recipient=recipient,
            recipient_kex=laptop.public.kex_key,
            profile_keys=[profile_key],
        ).decode(),
        "backup": {
            "code": str(code),
            "id": profile_key.id,
            "record": profile_key.backup_json(),
            "sealed": b64u(recovery.seal(code.public_key(), profile_key.backup_json())),
        },
        "refused": [
            {
                "profile_key": RoomProfileKey(
                    room=ROOM, version=1, key=ProfileKey(seed("unnamed key id")[:16], key.key)
                ).to_json(),
                "code": "unknown_key",
                "why": "a key id the room's state does not name",
            },
            {
                "profile_key": RoomProfileKey(room=other_room, version=1, key=key).to_json(),
                "code": "unknown_key",
                "why": "the key filed under another room",
            },
            {
                "profile_key": RoomProfileKey(room=ROOM, version=2, key=key).to_json(),
                "code": "unknown_key",
                "why": "a version the room's state does not have",
            },
            {
                "profile_key": RoomProfileKey(room=ROOM, version=1, key=wrong).to_json(),
                "code": "decrypt_failed",
                "why": "the right key id with a key that does not open the profile",
            },
        ],
        "note": "message and backup.sealed are HPKE ciphertexts: decryption vectors",
    }


def safety_vectors() -> dict[str, Any]:
    nurse, doctor = identity("nurse").public, identity("doctor").public
    number = safety.safety_number(PEOPLE["nurse"][0], nurse, PEOPLE["doctor"][0], doctor)
    return {
        "first": {"national_id": PEOPLE["nurse"][0], "identity_key": b64u(nurse)},
        "second": {"national_id": PEOPLE["doctor"][0], "identity_key": b64u(doctor)},
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
    "kex_key": kex_vectors,
    "room_profile": profile_vectors,
    "linking": linking_vectors,
    "recovery": recovery_vectors,
    "history_keys": history_key_vectors,
}
# Files holding HPKE ciphertexts or random nonces: written anew only when named.
RANDOMISED = {"hpke_share", "room_profile", "history_keys"}


def main(names: list[str]) -> None:
    """Write every deterministic file, and the randomised ones named on the command line
    (rewriting those changes their ciphertexts)."""
    for name, generate in GENERATORS.items():
        if name in RANDOMISED and name not in names:
            continue
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(generate(), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {path.name}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
