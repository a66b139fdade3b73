"""Signed tree heads of the key-transparency log, witness cosignatures, and the proofs
that tie entries and heads together (docs/protocol.md §10.4).

* A *tree head* is the log's signed statement "the log has ``size`` entries with this
  root at this time" (label ``relais/v2/tree-head``).
* A *cosignature* is a witness's signature of the same head (label
  ``relais/v2/cosignature``): the witness checked that the head extends every head it
  cosigned before, so a log that shows two histories cannot have both cosigned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import labels
from e2ee.encoding import JsonObject, b64u, expect_int, expect_object, unb64u
from e2ee.errors import CryptoError, CryptoErrorCode
from e2ee.keys import KEY_BYTES, SIGNATURE_BYTES, raw_public, sign, verify
from e2ee.merkle import HASH_BYTES, leaf_hash, verify_consistency, verify_inclusion
from e2ee.transparency import VERSION, log_key_id


@dataclass(frozen=True, slots=True)
class TreeHead:
    size: int
    root: bytes
    timestamp: int
    signature: bytes

    def body(self, log_public: bytes) -> JsonObject:
        return head_body(log_public, self.size, self.root, self.timestamp)

    def to_json(self, *, log_public: bytes) -> JsonObject:
        return {"head": self.body(log_public), "sig": b64u(self.signature)}


def head_body(log_public: bytes, size: int, root: bytes, timestamp: int) -> JsonObject:
    return {
        "v": VERSION,
        "type": "tree_head",
        "log": log_key_id(log_public),
        "size": size,
        "root": b64u(root),
        "timestamp": timestamp,
    }


def sign_tree_head(
    *, log_key: Ed25519PrivateKey, size: int, root: bytes, timestamp: int
) -> TreeHead:
    body = head_body(raw_public(log_key), size, root, timestamp)
    return TreeHead(
        size=size, root=root, timestamp=timestamp, signature=sign(log_key, labels.TREE_HEAD, body)
    )


def parse_tree_head(value: object, *, log_public: bytes) -> TreeHead:
    """Check a signed tree head (``{"head": ..., "sig": ...}``) from the given log."""
    outer = expect_object(value, {"head", "sig"}, field="tree head")
    body = expect_object(
        outer["head"], {"v", "type", "log", "size", "root", "timestamp"}, field="tree head"
    )
    if body["v"] != VERSION or body["type"] != "tree_head" or body["log"] != log_key_id(log_public):
        raise CryptoError(CryptoErrorCode.BAD_ENCODING, "tree head from another log or version")
    signature = unb64u(outer["sig"], length=SIGNATURE_BYTES, field="sig")
    verify(log_public, signature, labels.TREE_HEAD, body)
    return TreeHead(
        size=expect_int(body["size"], field="size"),
        root=unb64u(body["root"], length=HASH_BYTES, field="root"),
        timestamp=expect_int(body["timestamp"], field="timestamp"),
        signature=signature,
    )


def log_keys_body(*, log_public: bytes, vrf_public: bytes) -> JsonObject:
    return {
        "v": VERSION,
        "type": "log_keys",
        "log": log_key_id(log_public),
        "vrf_key": b64u(vrf_public),
    }


def sign_vrf_key(*, log_key: Ed25519PrivateKey, vrf_public: bytes) -> bytes:
    """The log key's signature naming its VRF key, so one shipped key pins both."""
    body = log_keys_body(log_public=raw_public(log_key), vrf_public=vrf_public)
    return sign(log_key, labels.LOG_KEYS, body)


def verify_vrf_key(*, log_public: bytes, vrf_public: bytes, signature: bytes) -> None:
    body = log_keys_body(log_public=log_public, vrf_public=vrf_public)
    verify(log_public, signature, labels.LOG_KEYS, body)


# Witnesses ------------------------------------------------------------------------


def witness_id(witness_public: bytes) -> str:
    """A witness's name: base64url of SHA-256 of its Ed25519 public key."""
    return b64u(hashlib.sha256(witness_public).digest())


def cosignature_body(*, log_public: bytes, witness_public: bytes, head: TreeHead) -> JsonObject:
    return {
        "v": VERSION,
        "type": "cosignature",
        "log": log_key_id(log_public),
        "witness": witness_id(witness_public),
        "size": head.size,
        "root": b64u(head.root),
        "timestamp": head.timestamp,
    }


def cosign(*, witness_key: Ed25519PrivateKey, log_public: bytes, head: TreeHead) -> JsonObject:
    """A cosignature as it travels: ``{"witness": id, "sig": b64u}``."""
    public = raw_public(witness_key)
    body = cosignature_body(log_public=log_public, witness_public=public, head=head)
    return {"witness": witness_id(public), "sig": b64u(sign(witness_key, labels.COSIGNATURE, body))}


def verify_cosignature(
    value: object, *, log_public: bytes, witness_public: bytes, head: TreeHead
) -> None:
    """Raise unless ``value`` is this witness's valid cosignature of ``head``."""
    item = expect_object(value, {"witness", "sig"}, field="cosignature")
    if item["witness"] != witness_id(witness_public):
        raise CryptoError(CryptoErrorCode.BAD_SIGNATURE, "cosignature of another witness")
    body = cosignature_body(log_public=log_public, witness_public=witness_public, head=head)
    signature = unb64u(item["sig"], length=SIGNATURE_BYTES, field="sig")
    verify(witness_public, signature, labels.COSIGNATURE, body)


def cosigners(
    values: Iterable[object], *, log_public: bytes, witnesses: Iterable[bytes], head: TreeHead
) -> set[bytes]:
    """The witnesses among ``witnesses`` (public keys) whose cosignature of ``head`` is in
    ``values`` and verifies. Malformed or unknown cosignatures are ignored."""
    by_id = {witness_id(key): key for key in witnesses if len(key) == KEY_BYTES}
    found: set[bytes] = set()
    for value in values:
        if not isinstance(value, dict) or value.get("witness") not in by_id:
            continue
        key = by_id[str(value["witness"])]
        try:
            verify_cosignature(value, log_public=log_public, witness_public=key, head=head)
        except CryptoError:
            continue
        found.add(key)
    return found


# Proofs ---------------------------------------------------------------------------


def check_inclusion(*, leaf: bytes, index: int, proof: list[str], head: TreeHead) -> None:
    """The log entry ``leaf`` is entry ``index`` of the tree ``head`` signs."""
    verify_inclusion(
        leaf=leaf_hash(leaf),
        index=index,
        size=head.size,
        proof=[unb64u(node, length=HASH_BYTES, field="proof") for node in proof],
        expected_root=head.root,
    )


def check_consistency(*, old: TreeHead, new: TreeHead, proof: list[str]) -> None:
    """The tree ``new`` signs extends the tree ``old`` signs (nothing rewritten)."""
    verify_consistency(
        old_size=old.size,
        new_size=new.size,
        old_root=old.root,
        new_root=new.root,
        proof=[unb64u(node, length=HASH_BYTES, field="proof") for node in proof],
    )
