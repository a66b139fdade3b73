"""The log's published vectors reproduce: RFC 9381's own ECVRF vectors (an independent
source), and the v2 log vectors (labels, entries, heads, cosignature) recomputed from
their inputs, as the browser client must."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import merkle, transparency, tree_heads, vrf
from e2ee.encoding import b64u, unb64u
from e2ee.errors import CryptoError
from e2ee.keys import raw_public
from keylog.keys import derive_keys

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> dict:
    loaded: dict = json.loads((VECTORS / f"{name}.json").read_text())
    return loaded


@pytest.mark.parametrize("case", load("vrf_rfc9381")["cases"])
def test_ecvrf_reproduces_rfc9381(case):
    sk, pk, alpha, pi, beta = (bytes.fromhex(case[k]) for k in ("sk", "pk", "alpha", "pi", "beta"))
    assert vrf.public_key(sk) == pk
    assert vrf.prove(sk, alpha) == pi
    assert vrf.proof_to_hash(pi) == beta
    assert vrf.verify(pk, alpha, pi) == beta
    # Another input, a changed proof, another key: refused.
    for bad_key, bad_alpha, bad_pi in [
        (pk, alpha + b"\x00", pi),
        (pk, alpha, pi[:40] + bytes([pi[40] ^ 1]) + pi[41:]),
        (pk, alpha, pi[:79] + bytes([pi[79] ^ 0x80])),  # s >= L
        (vrf.public_key(bytes(32)), alpha, pi),
        (bytes(32), alpha, pi),  # not a point of the prime-order subgroup
    ]:
        with pytest.raises(CryptoError):
            vrf.verify(bad_key, bad_alpha, bad_pi)


def test_log_vectors_v2():
    v = load("keylog")
    keys = derive_keys(unb64u(v["log_seed"]))
    assert (b64u(keys.log_public), b64u(keys.vrf_secret)) == (v["log_public"], v["vrf_secret"])
    assert b64u(keys.vrf_public) == v["vrf_public"]
    tree_heads.verify_vrf_key(
        log_public=keys.log_public, vrf_public=keys.vrf_public, signature=unb64u(v["vrf_key_sig"])
    )
    assert transparency.log_key_id(keys.log_public) == v["log_id"]
    # The label: the first 32 bytes of the ECVRF output of the label input.
    assert b64u(transparency.label_input(v["national_id"])) == v["label_input"]
    label, proof = transparency.label_for(keys.vrf_secret, v["national_id"])
    assert (b64u(label), b64u(proof)) == (v["label"], v["vrf_proof"])
    assert (
        b64u(vrf.verify(keys.vrf_public, transparency.label_input(v["national_id"]), proof))
        == (v["vrf_output"])
    )
    identity = Ed25519PrivateKey.from_private_bytes(unb64u(v["identity_private"]))
    phone = Ed25519PrivateKey.from_private_bytes(unb64u(v["device_private"]))
    assert b64u(transparency.sign_identity_binding(identity, v["national_id"])) == v["binding"]
    common: dict[str, Any] = {
        "national_id": v["national_id"],
        "device": v["device_number"],
        "kind": "device",
    }
    assert (
        b64u(transparency.sign_device_certificate(identity, **common, sign_key=raw_public(phone)))
        == v["cross_sig"]
    )
    assert (
        b64u(
            transparency.sign_device_registration(
                phone, **common, identity_key=raw_public(identity)
            )
        )
        == v["self_sig"]
    )
    leaves = [e.encode() for e in v["entries"]]
    records = [transparency.parse_log_entry(leaf, log_public=keys.log_public) for leaf in leaves]
    assert [transparency.issue_entry(keys.signing, r) for r in records] == leaves
    assert [b64u(merkle.leaf_hash(leaf)) for leaf in leaves] == v["leaf_hashes"]
    chain = transparency.verify_chain(
        national_id=v["national_id"], label=label, entries=list(enumerate(records))
    )
    assert chain.identity_key == raw_public(identity)
    assert chain.devices == {}  # the device entry was followed by its revocation
    heads = [tree_heads.parse_tree_head(h, log_public=keys.log_public) for h in v["tree_heads"]]
    for head in heads:
        signed = tree_heads.sign_tree_head(
            log_key=keys.signing, size=head.size, root=head.root, timestamp=head.timestamp
        )
        assert signed == head  # Ed25519 is deterministic
    tree_heads.check_inclusion(
        leaf=leaves[1], index=1, proof=v["inclusion_of_device_in_3"], head=heads[2]
    )
    tree_heads.check_consistency(old=heads[0], new=heads[2], proof=v["consistency_1_to_3"])
    witness = Ed25519PrivateKey.from_private_bytes(unb64u(v["witness_private"]))
    assert b64u(raw_public(witness)) == v["witness_public"]
    assert (
        tree_heads.cosign(witness_key=witness, log_public=keys.log_public, head=heads[2])
        == v["cosignature_of_head_3"]
    )
