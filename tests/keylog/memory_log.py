"""A log kept in memory, answering the REST calls a client makes, so the client's rules
can be tested without a server: the honest answers, and the ones a dishonest operator
with the log key would choose (forked, stale, uncosigned heads)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import merkle, tree_heads
from e2ee.encoding import b64u
from e2ee.keys import raw_public
from keylog.keys import derive_keys

NOW = 1_800_000_000_000


class MemoryLog:
    def __init__(self, witnesses: list[Ed25519PrivateKey]) -> None:
        self.keys = derive_keys(bytes(range(32)))
        self.witnesses = witnesses
        self.leaves: list[bytes] = []
        self.answer: dict[str, Any] | None = None  # what ``keys/log`` answers next

    @property
    def log_public(self) -> bytes:
        return self.keys.log_public

    def append(self, count: int = 1) -> None:
        for _ in range(count):
            self.leaves.append(merkle.leaf_hash(b"leaf %d" % len(self.leaves)))

    def head(
        self, size: int | None = None, *, timestamp: int = NOW, root: bytes | None = None
    ) -> tree_heads.TreeHead:
        size = len(self.leaves) if size is None else size
        return tree_heads.sign_tree_head(
            log_key=self.keys.signing,
            size=size,
            root=root or merkle.root(self.leaves[:size]),
            timestamp=timestamp,
        )

    def served(
        self, head: tree_heads.TreeHead, signers: list[Ed25519PrivateKey] | None = None
    ) -> dict[str, Any]:
        cosigners = self.witnesses if signers is None else signers
        return {
            "tree_head": head.to_json(log_public=self.log_public),
            "cosignatures": [
                tree_heads.cosign(witness_key=w, log_public=self.log_public, head=head)
                for w in cosigners
            ],
        }

    async def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        if path == "keys/log":
            served = self.answer or self.served(self.head())
            return {
                "log_key": b64u(self.log_public),
                "vrf_key": b64u(self.keys.vrf_public),
                "vrf_key_sig": b64u(
                    tree_heads.sign_vrf_key(
                        log_key=self.keys.signing, vrf_public=self.keys.vrf_public
                    )
                ),
                "witnesses": [b64u(raw_public(w)) for w in self.witnesses],
                **served,
            }
        if path == "keys/log/consistency":
            first, second = params["first"], params["second"]
            proof = merkle.consistency_proof(self.leaves[:second], first)
            return {"first": first, "second": second, "proof": [b64u(p) for p in proof]}
        if path == "keys/log/tree-head":
            return self.served(self.head(params["size"]))
        raise AssertionError(f"unexpected call {method} {path}")
