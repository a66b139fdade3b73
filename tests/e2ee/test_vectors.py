"""The published test vectors (tests/vectors/*.json) reproduce with this implementation.

Each test recomputes the outputs from the vector's inputs; a second implementation
(the browser client) must pass the same checks. The Merkle roots are also checked
against the Certificate Transparency reference values, an independent source.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.history import HistoryKey
from e2ee import kex, labels, linking, merkle, profile, ratchet, recovery, safety, shares, state
from e2ee.encoding import b64u, canonical_json, parse_canonical, unb64u
from e2ee.envelopes import InboundSession, OutboundSession, decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError
from e2ee.identity import IdentityKeyPair
from e2ee.keys import DeviceKeyPair, PublicDeviceKeys
from e2ee.profile import ProfileKey
from tests.vectors.generate import seed as generate_seed

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> dict:
    loaded: dict = json.loads((VECTORS / f"{name}.json").read_text())
    return loaded


def keys_of(entry: dict) -> DeviceKeyPair:
    pair = DeviceKeyPair.from_private_bytes(
        sign=unb64u(entry["sign_private"]), kex=unb64u(entry["kex_private"])
    )
    assert pair.public == PublicDeviceKeys.from_json(entry)
    return pair


def test_canonical_json():
    vectors = load("canonical_json")
    for case in vectors["cases"]:
        assert canonical_json(case["input"]).decode() == case["canonical"]
        assert parse_canonical(case["canonical"].encode()) == case["input"]
    for value in vectors["rejected"]:
        with pytest.raises(CryptoError):
            canonical_json(value)


# Roots of the first n CT reference leaves (certificate-transparency test data).
CT_REFERENCE_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def test_merkle_roots_and_proofs():
    vectors = load("merkle")
    hashes = [merkle.leaf_hash(bytes.fromhex(leaf)) for leaf in vectors["leaves"]]
    assert [h.hex() for h in hashes] == vectors["leaf_hashes"]
    for size, expected in vectors["roots"].items():
        assert merkle.root(hashes[: int(size)]).hex() == expected
    for size, expected in CT_REFERENCE_ROOTS.items():
        assert vectors["roots"][str(size)] == expected
    for case in vectors["inclusion"]:
        proof = [bytes.fromhex(p) for p in case["proof"]]
        assert merkle.inclusion_proof(hashes[: case["size"]], case["index"]) == proof
        merkle.verify_inclusion(
            leaf=hashes[case["index"]],
            index=case["index"],
            size=case["size"],
            proof=proof,
            expected_root=bytes.fromhex(vectors["roots"][str(case["size"])]),
        )
    for case in vectors["consistency"]:
        proof = [bytes.fromhex(p) for p in case["proof"]]
        assert merkle.consistency_proof(hashes[: case["new_size"]], case["old_size"]) == proof
        merkle.verify_consistency(
            old_size=case["old_size"],
            new_size=case["new_size"],
            old_root=bytes.fromhex(vectors["roots"][str(case["old_size"])]),
            new_root=bytes.fromhex(vectors["roots"][str(case["new_size"])]),
            proof=proof,
        )


def test_ratchet():
    steps = load("ratchet")["steps"]
    chain = unb64u(steps[0]["chain_key"])
    for step in steps:
        assert b64u(chain) == step["chain_key"]
        keys = ratchet.message_key(chain)
        assert (b64u(keys.key), b64u(keys.nonce)) == (step["message_key"], step["nonce"])
        chain = ratchet.next_chain_key(chain)


def test_room_state_chain():
    v = load("room_state")
    for person in v["identities"]:
        owner = IdentityKeyPair.from_private_bytes(unb64u(person["identity_private"]))
        assert b64u(owner.public) == person["identity_key"]
    current = None
    for raw, head in zip(v["events"], v["heads"], strict=True):
        current, event = state.apply_event(current, raw.encode())
        assert b64u(event.hash) == head
    assert current is not None
    assert current.epoch == v["final_epoch"]
    assert sorted(current.members) == ["810001987659", "810003456786"]
    assert sorted(current.members["810001987659"].devices) == [9, 12]
    for case in v["rejected"]:
        partial = state.replay_chain([e.encode() for e in v["events"][: case["after"]]])
        with pytest.raises(CryptoError) as refused:
            state.apply_event(partial, case["event"].encode())
        assert refused.value.code == case["code"]


def test_archive_to_members_policy():
    """The optional policy field: the event reproduces byte for byte, applies, and the
    policy reads back as written; ``false``, a non-boolean or an unknown field are
    refused."""
    v = load("room_state")
    case = v["archive_to_members"]
    before = state.replay_chain([e.encode() for e in v["events"][: case["after"]]])
    nurse = next(keys_of(d) for d in v["devices"] if d["name"] == "nurse")
    made = state.sign_event(
        state=before,
        room=before.room,
        author=("810003456786", 7),
        key_pair=nurse,
        action="set_policy",
        content={"policy": state.Policy.from_json(case["policy"]).to_json()},
        timestamp=json.loads(case["event"])["event"]["ts"],
    )
    assert made.decode() == case["event"]
    after, event = state.apply_event(before, made)
    assert b64u(event.hash) == case["head"]
    assert after.policy.archive_to_members is True
    assert after.policy.to_json() == case["policy"]
    assert "archive_to_members" not in before.policy.to_json()
    for refused in case["refused"]:
        with pytest.raises(CryptoError) as error:
            state.apply_event(before, refused["event"].encode())
        assert error.value.code == refused["code"], refused["why"]


def test_envelopes_reproduce_and_decrypt():
    v = load("envelope")
    chain = load("room_state")
    devices = {d["name"]: keys_of(d) for d in chain["devices"]}
    room_state = state.replay_chain([e.encode() for e in chain["events"][: v["chain_events"]]])
    start = v["session"]
    outbound = OutboundSession(
        room=room_state.room,
        sender=tuple(v["sender"]),
        key_id=unb64u(start["key_id"]),
        chain_key=unb64u(start["chain_key"]),
        index=start["index"],
        epoch=room_state.epoch,
        created_at_ms=0,
    )
    log = state.log_gossip(5, generate_seed("log root"))
    made = [
        outbound.encrypt(
            state=room_state, key_pair=devices["nurse"], content=c, seq=seq, ts=ts, log=log
        ).decode()
        for c, seq, ts in zip(v["contents"], v["seqs"], v["timestamps"], strict=True)
    ]
    assert made == v["envelopes"]
    inbound = InboundSession(
        room=room_state.room,
        sender=tuple(v["sender"]),
        key_id=unb64u(start["key_id"]),
        chain_key=unb64u(start["chain_key"]),
        next_index=0,
        epoch=room_state.epoch,
    )
    sessions = {(*inbound.sender, inbound.key_id): inbound}
    for envelope, content, seq in zip(v["envelopes"], v["contents"], v["seqs"], strict=True):
        opened = decrypt_envelope(
            state=room_state, envelope=parse_envelope(envelope.encode()), sessions=sessions
        )
        assert (opened.content, opened.seq) == (content, seq)


def test_key_agreement_key():
    v = load("kex_key")
    pharmacist = keys_of(v["device"])
    published = kex.verify_kex(
        v["published"].encode(),
        national_id="810002765435",
        device=11,
        sign_key=pharmacist.public.sign_key,
        now_ms=v["now"],
    )
    assert published.kex_key == pharmacist.public.kex_key
    assert published.serial == 1


def test_hpke_share_opens():
    v = load("hpke_share")
    chain = load("room_state")
    devices = {d["name"]: keys_of(d) for d in chain["devices"]}
    room_state = state.replay_chain([e.encode() for e in chain["events"][: v["chain_events"]]])
    message = v["to_device_message"].encode()
    assert shares.share_kex_serial(message) == 1
    opened = shares.open_share(
        message=message, kex_private=devices["pharmacist"].kex_private, me=tuple(v["recipient"])
    )
    assert opened.body == v["share"]
    assert opened.profile_key is not None
    session = shares.accept_share(opened, state=room_state)
    assert b64u(session.chain_key) == v["share"]["chain_key"]
    with pytest.raises(CryptoError):  # only the recipient's key opens it
        shares.open_share(
            message=message, kex_private=devices["doctor"].kex_private, me=tuple(v["recipient"])
        )


def test_room_profile_opens():
    v = load("room_profile")
    key = ProfileKey(key_id=unb64u(v["key_id"]), key=unb64u(v["key"]))
    opened = profile.decrypt_profile(
        room=v["room"], version=v["version"], key=key, ciphertext=unb64u(v["ct"])
    )
    assert opened == v["profile"]


def test_link_codes():
    v = load("linking")
    code = linking.LinkCode(
        link_id=unb64u(v["link_id"]), commitment=linking.commitment(v["request"])
    )
    assert b64u(code.commitment) == v["commitment"]
    assert (code.qr_payload, code.short_code) == (v["qr_payload"], v["short_code"])
    assert linking.LinkCode.parse(v["short_code"]).matches(v["request"])


def test_recovery_code_and_account_keys():
    v = load("recovery")
    code = recovery.RecoveryCode.parse(v["code"])
    assert b64u(code.public_key()) == v["recovery_public"]
    secret = unb64u(v["account_secret"])
    for purpose, key in v["account_keys"].items():
        assert b64u(recovery.account_key(secret, purpose)) == key


def test_history_keys_carry_the_profile_key():
    """The transfer to a linked device and the backup carry the room's profile key; the
    receiver uses it only when the room's verified state names it (protocol §10.9)."""
    from client.history import (
        RoomProfileKey,
        open_backup_record,
        open_transfer,
        transfer_body,
    )

    v = load("history_keys")
    chain = load("room_state")
    before = state.replay_chain([e.encode() for e in chain["events"][: v["after"]]])
    after, event = state.apply_event(before, v["set_profile"].encode())
    assert b64u(event.hash) == v["head"]
    devices = {d["name"]: keys_of(d) for d in v["devices"]}
    nurse, laptop = devices["nurse"], devices["nurse-laptop"]

    history_key = HistoryKey.from_json(v["history_key"])
    assert history_key.id == v["history_key_id"]
    profile_key = RoomProfileKey.from_json(v["profile_key"])
    sender, recipient = tuple(v["sender"]), tuple(v["recipient"])
    body = transfer_body(
        keys=[history_key], sender=sender, recipient=recipient, profile_keys=[profile_key]
    )
    assert canonical_json(body).decode() == v["transfer"]
    assert b64u(nurse.sign(labels.HISTORY, body)) == v["sig"]
    alone = transfer_body(keys=[history_key], sender=sender, recipient=recipient)
    assert canonical_json(alone).decode() == v["transfer_without_profile_keys"]
    assert b64u(nurse.sign(labels.HISTORY, alone)) == v["sig_without_profile_keys"]

    opened = open_transfer(v["message"].encode(), kex_private=laptop.kex_private, me=recipient)
    opened.verify(nurse.public.sign_key)
    assert canonical_json(opened.body).decode() == v["transfer"]
    assert opened.keys == [history_key]
    assert opened.profile_keys == [profile_key]
    profile_key.check(after)
    assert (
        profile.decrypt_profile(
            room=after.room,
            version=1,
            key=profile_key.key,
            ciphertext=after.profile.ciphertext,  # type: ignore[union-attr]
        )
        == v["profile"]
    )
    with pytest.raises(CryptoError) as no_profile_yet:
        profile_key.check(before)
    assert no_profile_yet.value.code == "unknown_key"

    backup = v["backup"]
    record = open_backup_record(
        unb64u(backup["sealed"]), recovery.RecoveryCode.parse(backup["code"])
    )
    assert record == profile_key
    assert profile_key.backup_json() == backup["record"]
    assert profile_key.id == backup["id"] != history_key.id
    for case in v["refused"]:
        with pytest.raises(CryptoError) as refused:
            RoomProfileKey.from_json(case["profile_key"]).check(after)
        assert refused.value.code == case["code"], case["why"]


def test_safety_number():
    v = load("safety_number")
    number = safety.safety_number(
        v["first"]["national_id"],
        unb64u(v["first"]["identity_key"]),
        v["second"]["national_id"],
        unb64u(v["second"]["identity_key"]),
    )
    assert (number.digits, number.qr_payload) == (v["digits"], v["qr_payload"])
    assert len(number.digits.replace(" ", "")) == 60


def test_the_generator_reproduces_the_published_files():
    """Everything but the HPKE ciphertext (random ephemeral key) is deterministic."""
    from tests.vectors import generate

    for name, make in generate.GENERATORS.items():
        if name in ("hpke_share", "room_profile"):
            continue
        published = json.loads((VECTORS / f"{name}.json").read_text())
        made = json.loads(json.dumps(make(), ensure_ascii=False))
        if name == "history_keys":  # all but its two HPKE ciphertexts
            for value in (made, published):
                del value["message"], value["backup"]["sealed"]
        assert made == published, name
