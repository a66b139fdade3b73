"""What a witness checks before it cosigns a head of the log, and its memory.

The witness remembers the last head it cosigned (``WitnessState``, written atomically
before any cosignature leaves, so after a crash or restart it still knows). It cosigns
a head only if:

* the log key signed it;
* it extends the remembered head: same size and root, or a larger tree with an RFC
  9162 consistency proof from the remembered one (never a smaller tree, never another
  tree of the same size: a fork is never cosigned);
* its time does not go back from the remembered head's, nor lies more than
  ``max_skew_ms`` in the future.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee import tree_heads
from e2ee.encoding import JsonObject, b64u, unb64u
from e2ee.errors import CryptoError
from e2ee.tree_heads import TreeHead


class RefusedError(Exception):
    """The head must not be cosigned; the reason is for the operator's log."""


class LogReader(Protocol):
    def latest_head(self) -> Any: ...

    def consistency(self, first: int, second: int) -> list[str]: ...

    def post_cosignature(self, body: JsonObject) -> None: ...


@dataclass(frozen=True, slots=True)
class WitnessState:
    size: int
    root: bytes
    timestamp: int

    @classmethod
    def load(cls, path: Path) -> WitnessState | None:
        if not path.exists():
            return None
        value = json.loads(path.read_text())
        return cls(int(value["size"]), unb64u(value["root"], length=32), int(value["timestamp"]))

    def save(self, path: Path) -> None:
        """Write, fsync, rename, fsync the folder: the old state or the new, never half."""
        body = json.dumps({"size": self.size, "root": b64u(self.root), "timestamp": self.timestamp})
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".witness-")
        with os.fdopen(descriptor, "w") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def check_head(
    *,
    head: TreeHead,
    last: WitnessState | None,
    proof: list[str] | None,
    now_ms: int,
    max_skew_ms: int,
) -> None:
    """Raise RefusedError unless ``head`` may be cosigned after ``last`` (``proof``: the
    consistency proof from ``last.size`` to ``head.size``)."""
    if head.timestamp - now_ms > max_skew_ms:
        raise RefusedError(f"head time {head.timestamp} is in the future")
    if last is None:
        return
    if head.timestamp < last.timestamp:
        raise RefusedError(f"head time goes back ({head.timestamp} < {last.timestamp})")
    if head.size < last.size:
        raise RefusedError(f"the log shrank from {last.size} to {head.size} entries")
    if head.size == last.size:
        if head.root != last.root:
            raise RefusedError(f"two different trees of size {head.size}: a fork")
        return
    old = TreeHead(size=last.size, root=last.root, timestamp=last.timestamp, signature=b"")
    try:
        tree_heads.check_consistency(old=old, new=head, proof=proof or [])
    except CryptoError:
        raise RefusedError(
            f"the head of size {head.size} does not extend size {last.size}"
        ) from None


class Witness:
    def __init__(
        self,
        *,
        log: LogReader,
        log_public: bytes,
        key: Ed25519PrivateKey,
        state_path: Path,
        max_skew_ms: int = 300_000,
    ) -> None:
        self.log = log
        self.log_public = log_public
        self.key = key
        self.state_path = state_path
        self.max_skew_ms = max_skew_ms

    def step(self, now_ms: int) -> TreeHead:
        """Fetch the newest head, check it, remember it, then cosign and post it."""
        try:
            head = tree_heads.parse_tree_head(self.log.latest_head(), log_public=self.log_public)
        except CryptoError as error:
            raise RefusedError(f"the head is not signed by the log key: {error}") from None
        last = WitnessState.load(self.state_path)
        proof = None
        if last is not None and head.size > last.size:
            proof = self.log.consistency(last.size, head.size)
        check_head(head=head, last=last, proof=proof, now_ms=now_ms, max_skew_ms=self.max_skew_ms)
        WitnessState(head.size, head.root, head.timestamp).save(self.state_path)
        cosignature = tree_heads.cosign(witness_key=self.key, log_public=self.log_public, head=head)
        self.log.post_cosignature({"size": head.size, "timestamp": head.timestamp, **cosignature})
        return head
