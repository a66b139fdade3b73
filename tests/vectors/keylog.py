"""The key-transparency log vectors, version 2 (``keylog.json``): the log's keys from a
seed, VRF labels, the three entry types with fixed keys, their leaf hashes, tree
heads, proofs and a witness cosignature. Written by ``generate.py``; a second
implementation recomputes every output from the inputs (``tests/e2ee/test_vectors.py``
shows how)."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import merkle, transparency, tree_heads, vrf
from e2ee.encoding import b64u
from e2ee.keys import raw_public
from keylog.keys import derive_keys

NURSE = "810003456786"
T0 = 1795392000000


def _seed(name: str) -> bytes:
    return hashlib.sha256(b"relais test vector " + name.encode()).digest()


def keylog_vectors() -> dict[str, Any]:
    keys = derive_keys(_seed("log seed"))
    identity = Ed25519PrivateKey.from_private_bytes(_seed("nurse/identity"))
    phone = Ed25519PrivateKey.from_private_bytes(_seed("nurse-phone/sign"))
    witness = Ed25519PrivateKey.from_private_bytes(_seed("witness"))
    label, proof = transparency.label_for(keys.vrf_secret, NURSE)
    binding = transparency.sign_identity_binding(identity, NURSE)
    common: dict[str, Any] = {"national_id": NURSE, "device": 7, "kind": "device"}
    cross = transparency.sign_device_certificate(
        identity,
        **common,
        sign_key=raw_public(phone),
    )
    self_sig = transparency.sign_device_registration(
        phone,
        **common,
        identity_key=raw_public(identity),
    )
    entries: list[transparency.LogRecord] = [
        transparency.IdentityEntry(label, -1, raw_public(identity), "practitioner", binding, T0),
        transparency.DeviceEntry(
            label, 0, 7, "device", raw_public(identity), raw_public(phone), cross, self_sig, T0
        ),
        transparency.RevocationEntry(label, 1, 7, raw_public(phone), "lost", T0 + 600_000),
    ]
    leaves = [transparency.issue_entry(keys.signing, e) for e in entries]
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    heads = [
        tree_heads.sign_tree_head(
            log_key=keys.signing, size=size, root=merkle.root(hashes[:size]), timestamp=T0 + size
        )
        for size in (1, 2, 3)
    ]
    return {
        "log_seed": b64u(_seed("log seed")),
        "log_public": b64u(keys.log_public),
        "vrf_secret": b64u(keys.vrf_secret),
        "vrf_public": b64u(keys.vrf_public),
        "vrf_key_sig": b64u(
            tree_heads.sign_vrf_key(log_key=keys.signing, vrf_public=keys.vrf_public)
        ),
        "log_id": transparency.log_key_id(keys.log_public),
        "national_id": NURSE,
        "label_input": b64u(transparency.label_input(NURSE)),
        "label": b64u(label),
        "vrf_proof": b64u(proof),
        "vrf_output": b64u(vrf.proof_to_hash(proof)),
        "identity_private": b64u(_seed("nurse/identity")),
        "device_private": b64u(_seed("nurse-phone/sign")),
        "device_number": 7,
        "binding": b64u(binding),
        "cross_sig": b64u(cross),
        "self_sig": b64u(self_sig),
        "entries": [leaf.decode() for leaf in leaves],
        "leaf_hashes": [b64u(h) for h in hashes],
        "tree_heads": [h.to_json(log_public=keys.log_public) for h in heads],
        "inclusion_of_device_in_3": [b64u(p) for p in merkle.inclusion_proof(hashes, 1)],
        "consistency_1_to_3": [b64u(p) for p in merkle.consistency_proof(hashes, 1)],
        "witness_private": b64u(_seed("witness")),
        "witness_public": b64u(raw_public(witness)),
        "cosignature_of_head_3": tree_heads.cosign(
            witness_key=witness, log_public=keys.log_public, head=heads[2]
        ),
    }
