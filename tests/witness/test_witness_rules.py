"""The witness's rules (witness/core.py) against an in-memory log: it cosigns heads that
extend the last one it cosigned, never a fork, a shrinking log or a time going back,
and it remembers across restarts (the state file)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import merkle, tree_heads
from e2ee.encoding import b64u
from tests.keylog.memory_log import NOW, MemoryLog
from witness.core import RefusedError, Witness, WitnessState


class WitnessedLog(MemoryLog):
    def __init__(self) -> None:
        super().__init__([])
        self.latest: tree_heads.TreeHead | None = None
        self.posted: list[dict] = []

    def latest_head(self):
        head = self.latest or self.head()
        return head.to_json(log_public=self.log_public)

    def consistency(self, first: int, second: int) -> list[str]:
        return [b64u(p) for p in merkle.consistency_proof(self.leaves[:second], first)]

    def post_cosignature(self, body) -> None:
        self.posted.append(body)


def test_the_witness_cosigns_extensions_only_and_remembers_across_restarts(tmp_path):
    log = WitnessedLog()
    log.append(3)
    key = Ed25519PrivateKey.generate()
    state = tmp_path / "state.json"

    def witness() -> Witness:  # a new process each time: only the state file remains
        return Witness(log=log, log_public=log.log_public, key=key, state_path=state)

    first = witness().step(NOW)
    assert WitnessState.load(state) == WitnessState(3, first.root, NOW)
    [posted] = log.posted
    tree_heads.verify_cosignature(
        {"witness": posted["witness"], "sig": posted["sig"]},
        log_public=log.log_public,
        witness_public=key.public_key().public_bytes_raw(),
        head=first,
    )
    log.append(2)
    log.latest = log.head(timestamp=NOW + 1)
    cosigned = witness().step(NOW + 1)
    assert cosigned.size == 5
    refusals = {
        "fork": log.head(5, timestamp=NOW + 2, root=bytes(32)),
        "shrunk": log.head(4, timestamp=NOW + 2),
        "time back": log.head(5, timestamp=NOW),
        "future": log.head(5, timestamp=NOW + 3_600_000),
    }
    for _why, head in refusals.items():
        log.latest = head
        with pytest.raises(RefusedError):  # {why}
            witness().step(NOW + 2)
    # A rewritten history that grows is refused too (no consistency proof holds).
    log.leaves[1] = bytes(32)
    log.append(1)
    log.latest = log.head(timestamp=NOW + 3)
    with pytest.raises(RefusedError):
        witness().step(NOW + 3)
    assert len(log.posted) == 2
    assert WitnessState.load(state) == WitnessState(5, cosigned.root, NOW + 1)


def test_a_head_not_signed_by_the_log_is_refused(tmp_path):
    log = WitnessedLog()
    log.append(1)
    other = WitnessedLog()
    other.keys = type(log.keys)(Ed25519PrivateKey.generate(), log.keys.vrf_secret)
    other.append(1)
    witness = Witness(
        log=other,
        log_public=log.log_public,
        key=Ed25519PrivateKey.generate(),
        state_path=tmp_path / "state.json",
    )
    with pytest.raises(RefusedError):
        witness.step(NOW)
    assert not (tmp_path / "state.json").exists()
