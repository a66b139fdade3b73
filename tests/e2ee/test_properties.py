"""Property tests (hypothesis): what goes in comes out, and nothing else gets in.

* decrypt(encrypt(m)) = m for any content;
* any flipped bit of an envelope, a changed header (the AAD), another sender, or a
  replay is refused — and a refused envelope leaves the receiver's state untouched;
* any order of delivery within the window decrypts every message exactly once;
* Merkle proofs verify for every size and index, and a changed proof does not.
"""

from __future__ import annotations

import json

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from e2ee import labels, merkle
from e2ee.encoding import b64u, canonical_json
from e2ee.envelopes import aad, decrypt_envelope, parse_envelope
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.ratchet import message_key
from tests.e2ee.helpers import DOCTOR, NURSE, PHARMACIST, make_room, session_pair

ROOM = make_room(members=(NURSE, DOCTOR, PHARMACIST))
texts = st.text(max_size=2000)
contents = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: k not in ("pad", "type", "seq", "ts")),
    st.one_of(st.text(max_size=50), st.integers(-(2**53) + 1, 2**53 - 1), st.booleans()),
    max_size=5,
).map(lambda extra: {"type": "text", **extra})


def receive(envelope: bytes, sessions: dict):
    return decrypt_envelope(state=ROOM.state, envelope=parse_envelope(envelope), sessions=sessions)


@settings(max_examples=60, deadline=None)
@given(text=texts)
def test_decrypt_of_encrypt_is_the_text(text):
    outbound, sessions = session_pair(ROOM)
    envelope = outbound.encrypt(
        state=ROOM.state,
        key_pair=ROOM.keys[NURSE],
        content={"type": "text", "text": text},
        seq=1,
        ts=1,
    )
    assert receive(envelope, sessions).content == {"type": "text", "text": text}
    assert len(json.loads(envelope)["ct"]) > 0


@settings(max_examples=40, deadline=None)
@given(content=contents)
def test_any_content_round_trips(content):
    outbound, sessions = session_pair(ROOM)
    envelope = outbound.encrypt(
        state=ROOM.state, key_pair=ROOM.keys[NURSE], content=content, seq=1, ts=1
    )
    assert receive(envelope, sessions).content == content


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_flipped_bit_is_refused_and_changes_nothing(data):
    outbound, sessions = session_pair(ROOM)
    envelope = outbound.encrypt(
        state=ROOM.state,
        key_pair=ROOM.keys[NURSE],
        content={"type": "text", "text": "plaie"},
        seq=1,
        ts=1,
    )
    bit = data.draw(st.integers(0, len(envelope) * 8 - 1))
    tampered = bytearray(envelope)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CryptoError):
        receive(bytes(tampered), sessions)
    # The refusal did not move the ratchet: the genuine envelope still opens.
    assert receive(envelope, sessions).content["text"] == "plaie"


HEADER_CHANGES = {
    "epoch": lambda h: {**h, "epoch": h["epoch"] + 1},
    "index": lambda h: {**h, "index": h["index"] + 1},
    "room": lambda h: {**h, "room": b64u(b"\x01" * 16)},
    "sender": lambda h: {**h, "sender": {"national_id": DOCTOR[0], "device": DOCTOR[1]}},
    "key_id": lambda h: {**h, "key_id": b64u(b"\x02" * 16)},
    "state": lambda h: {**h, "state": b64u(b"\x03" * 32)},
    "log": lambda h: {**h, "log": {"size": 3, "root": b64u(b"\x04" * 32)}},
}


@pytest.mark.parametrize("field", sorted(HEADER_CHANGES))
def test_a_changed_header_is_refused_even_when_re_signed(field):
    """The AEAD itself refuses another AAD; and the full check refuses the envelope even
    when the header is re-signed by the legitimate sender."""
    outbound, sessions = session_pair(ROOM)
    chain_key = outbound.chain_key
    envelope = json.loads(
        outbound.encrypt(
            state=ROOM.state,
            key_pair=ROOM.keys[NURSE],
            content={"type": "text", "text": "x"},
            seq=1,
            ts=1,
        )
    )
    header = {k: v for k, v in envelope.items() if k not in ("ct", "sig")}
    changed = HEADER_CHANGES[field](header)
    keys = message_key(chain_key)
    ciphertext = parse_envelope(canonical_json(envelope)).ciphertext
    with pytest.raises(InvalidTag):
        AESGCM(keys.key).decrypt(keys.nonce, ciphertext, aad(changed))
    signed = {**changed, "ct": envelope["ct"]}
    signature = ROOM.keys[NURSE].sign(labels.ENVELOPE, signed)
    forged = canonical_json({**signed, "sig": b64u(signature)})
    with pytest.raises(CryptoError):
        receive(forged, sessions)


def test_another_member_cannot_write_in_the_senders_name():
    """The doctor holds the nurse's chain key (shared to all members) but not her
    signing key: an envelope in her name signed by him is refused."""
    outbound, sessions = session_pair(ROOM)
    genuine = json.loads(
        outbound.encrypt(
            state=ROOM.state,
            key_pair=ROOM.keys[NURSE],
            content={"type": "text", "text": "a"},
            seq=1,
            ts=1,
        )
    )
    signed = {k: v for k, v in genuine.items() if k != "sig"}
    forged = canonical_json(
        {**signed, "sig": b64u(ROOM.keys[DOCTOR].sign(labels.ENVELOPE, signed))}
    )
    with pytest.raises(CryptoError) as refused:
        receive(forged, sessions)
    assert refused.value.code == CryptoErrorCode.BAD_SIGNATURE


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(list(range(12))))
def test_out_of_order_delivery_decrypts_each_once_and_replays_are_refused(order):
    outbound, sessions = session_pair(ROOM)
    envelopes = [
        outbound.encrypt(
            state=ROOM.state,
            key_pair=ROOM.keys[NURSE],
            content={"type": "text", "text": str(i)},
            seq=i + 1,
            ts=i,
        )
        for i in range(12)
    ]
    for position in order:
        assert receive(envelopes[position], sessions).content["text"] == str(position)
    for envelope in envelopes:
        with pytest.raises(CryptoError) as refused:
            receive(envelope, sessions)
        assert refused.value.code == CryptoErrorCode.REPLAY


def test_an_index_beyond_the_window_is_refused():
    from e2ee.envelopes import MAX_SKIP

    outbound, sessions = session_pair(ROOM)
    outbound.index = MAX_SKIP + 1
    envelope = outbound.encrypt(
        state=ROOM.state,
        key_pair=ROOM.keys[NURSE],
        content={"type": "text", "text": "far"},
        seq=1,
        ts=1,
    )
    with pytest.raises(CryptoError) as refused:
        receive(envelope, sessions)
    assert refused.value.code == CryptoErrorCode.TOO_FAR_AHEAD


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 70), data=st.data())
def test_merkle_proofs_verify_and_a_changed_node_does_not(size, data):
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = merkle.root(hashes)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(hashes, index)
    merkle.verify_inclusion(
        leaf=hashes[index], index=index, size=size, proof=proof, expected_root=root
    )
    old = data.draw(st.integers(0, size))
    consistency = merkle.consistency_proof(hashes, old)
    merkle.verify_consistency(
        old_size=old,
        new_size=size,
        old_root=merkle.root(hashes[:old]),
        new_root=root,
        proof=consistency,
    )
    if proof:
        spot = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:spot], bytes(32), *proof[spot + 1 :]]
        with pytest.raises(CryptoError):
            merkle.verify_inclusion(
                leaf=hashes[index], index=index, size=size, proof=bad, expected_root=root
            )
    other_leaf = merkle.leaf_hash(b"other")
    with pytest.raises(CryptoError):
        merkle.verify_inclusion(
            leaf=other_leaf, index=index, size=size, proof=proof, expected_root=root
        )
