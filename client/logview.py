"""This device's view of the key-transparency log (docs/protocol.md §10.4, "Client
rules").

* **Keys**: the log key (and the VRF key it signs) is the one shipped with the app
  (``LogConfig.log_key``; ``RELAIS_LOG_PUBLIC_KEY`` for the CLI). Without one, the
  key is trusted on first use — for development only, and said so (``tofu``).
* **Heads**: a head is accepted only if the log signed it, enough configured
  witnesses cosigned it, it is fresh (not older than ``max_age_ms``, not in the future
  beyond ``max_skew_ms``), and a consistency proof links it to the *largest* head this
  device ever accepted. A smaller head is checked as a prefix and never replaces the
  largest: the view never goes back. Equal sizes need equal roots.
* **Gossip**: a head another device or member saw (``observe_gossip``) is checked
  against this view; a mismatch is a fork (``ForkDetectedError``).
* **Monitor**: ``audit`` downloads every entry up to the largest accepted head,
  recomputes the root, and returns the entries under this device's own label.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from client.api import ApiError, RestApi
from e2ee import merkle, transparency, tree_heads
from e2ee.encoding import b64u, unb64u
from e2ee.errors import CryptoError
from e2ee.tree_heads import TreeHead

logger = logging.getLogger(__name__)
PAGE = 1000


class KeyTransparencyError(Exception):
    """The server's answer does not match its own log: do not trust it."""


class ForkDetectedError(KeyTransparencyError):
    """Two heads of the log that cannot both be true: the log showed different
    histories to different devices."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class LogConfig:
    """What the app ships with. ``required_cosignatures`` None means all witnesses."""

    log_key: bytes | None = None
    witnesses: Sequence[bytes] = ()
    required_cosignatures: int | None = None
    max_age_ms: int = 3_600_000
    max_skew_ms: int = 300_000
    clock: Callable[[], int] = field(default=_now_ms)

    @property
    def required(self) -> int:
        if self.required_cosignatures is None:
            return len(self.witnesses)
        return min(self.required_cosignatures, len(self.witnesses))

    @classmethod
    def from_environment(cls) -> LogConfig:
        """``RELAIS_LOG_PUBLIC_KEY`` (base64url) and ``RELAIS_WITNESS_KEYS`` (comma
        separated base64url), as the CLI reads them."""
        key = os.environ.get("RELAIS_LOG_PUBLIC_KEY", "").strip()
        witnesses = [
            unb64u(item.strip(), length=32, field="RELAIS_WITNESS_KEYS")
            for item in os.environ.get("RELAIS_WITNESS_KEYS", "").split(",")
            if item.strip()
        ]
        return cls(
            log_key=unb64u(key, length=32, field="RELAIS_LOG_PUBLIC_KEY") if key else None,
            witnesses=witnesses,
        )


@dataclass(frozen=True, slots=True)
class AuditedEntries:
    """The result of a monitor pass: the log audited up to ``size``, and every entry
    (index, leaf) found under the device's own labels, from the start."""

    size: int
    own: list[tuple[int, bytes]]
    refused: str = ""  # why the log's current head was refused (audited up to ours)


class LogView:
    """``data`` is the part of the key store the view keeps (pinned keys, the largest
    head accepted, the monitor's compact tree and own entries)."""

    def __init__(self, api: RestApi, data: dict[str, Any], config: LogConfig) -> None:
        self.api = api
        self.data = data
        self.config = config

    # Keys -------------------------------------------------------------------------

    @property
    def log_public(self) -> bytes:
        """The pinned log key (the configured one before anything was pinned)."""
        if "log_key" not in self.data and self.config.log_key is not None:
            return self.config.log_key
        return unb64u(self.data["log_key"], length=32)

    @property
    def vrf_public(self) -> bytes:
        return unb64u(self.data["vrf_key"], length=32)

    @property
    def tofu(self) -> bool:
        """True when the log key was trusted on first use (no key configured)."""
        return bool(self.data.get("tofu"))

    async def start(self) -> None:
        """Pin the log's keys and accept its current head."""
        info = await self.api.call("GET", "keys/log")
        try:
            served = unb64u(info["log_key"], length=32)
            vrf_key = unb64u(info["vrf_key"], length=32)
            tree_heads.verify_vrf_key(
                log_public=served,
                vrf_public=vrf_key,
                signature=unb64u(info["vrf_key_sig"], length=64),
            )
        except (CryptoError, KeyError) as error:
            raise KeyTransparencyError(f"the log's keys are invalid: {error}") from None
        expected = self.config.log_key
        if expected is not None and served != expected:
            raise KeyTransparencyError("the server's log key is not the one this app trusts")
        if "log_key" in self.data and self.log_public != served:
            raise KeyTransparencyError("the server's log key changed")
        if expected is None and "log_key" not in self.data:
            logger.warning(
                "no log key configured: trusting the server's on first use (development only)"
            )
            self.data["tofu"] = True
        self.data["log_key"] = b64u(served)
        self.data["vrf_key"] = b64u(vrf_key)
        await self.accept(info["tree_head"], info.get("cosignatures", []))

    # Heads ------------------------------------------------------------------------

    def check_head(self, value: Any, cosignatures: Sequence[Any]) -> TreeHead:
        """A head this device may accept on its own: signed, cosigned, fresh."""
        try:
            head = tree_heads.parse_tree_head(value, log_public=self.log_public)
        except CryptoError as error:
            raise KeyTransparencyError(f"tree head refused: {error}") from None
        if head.size == 0:
            return head  # the empty tree commits to nothing: no cosignature needed
        signed_by = tree_heads.cosigners(
            cosignatures, log_public=self.log_public, witnesses=self.config.witnesses, head=head
        )
        if len(signed_by) < self.config.required:
            raise KeyTransparencyError(
                f"tree head cosigned by {len(signed_by)} of the "
                f"{self.config.required} witnesses required"
            )
        now = self.config.clock()
        if head.size and now - head.timestamp > self.config.max_age_ms:
            raise KeyTransparencyError("tree head too old: the log may hide recent changes")
        if head.timestamp - now > self.config.max_skew_ms:
            raise KeyTransparencyError("tree head from the future")
        return head

    @property
    def largest(self) -> TreeHead | None:
        value = self.data.get("largest")
        if value is None:
            return None
        return tree_heads.parse_tree_head(value["tree_head"], log_public=self.log_public)

    async def accept(self, tree_head: Any, cosignatures: Sequence[Any]) -> TreeHead:
        """Check a head and link it to the largest head accepted; keep the largest."""
        value = tree_head
        head = self.check_head(value, cosignatures)
        largest = self.largest
        if largest is not None:
            await self._link(head, largest)
            if head.size < largest.size:
                return head  # a prefix of what we know: fine, but never our new view
            if head.size == largest.size and head.timestamp <= largest.timestamp:
                return head
        self.data["largest"] = {"tree_head": value, "cosignatures": list(cosignatures)}
        return head

    async def note(self, value: Any, cosignatures: Sequence[Any]) -> TreeHead:
        """A head the log answered an append with (not yet cosigned): it must be the
        log's and consistent with this view; it becomes the view only if acceptable."""
        try:
            head = tree_heads.parse_tree_head(value, log_public=self.log_public)
        except CryptoError as error:
            raise KeyTransparencyError(f"tree head refused: {error}") from None
        largest = self.largest
        if largest is not None:
            await self._link(head, largest)
        try:
            await self.accept(value, cosignatures)
        except ForkDetectedError:
            raise
        except KeyTransparencyError:
            pass  # consistent; the monitor reaches it once witnesses cosign a head
        return head

    async def _link(self, head: TreeHead, largest: TreeHead) -> None:
        """Raise ForkDetectedError unless one of the two heads extends the other."""
        old, new = (head, largest) if head.size <= largest.size else (largest, head)
        if old.size == new.size:
            if old.root != new.root:
                raise ForkDetectedError(f"two different trees of size {old.size}")
            return
        proof = await self.consistency(old.size, new.size)
        try:
            tree_heads.check_consistency(old=old, new=new, proof=proof)
        except CryptoError:
            raise ForkDetectedError(
                f"the heads of sizes {old.size} and {new.size} disagree"
            ) from None

    async def consistency(self, first: int, second: int) -> list[str]:
        try:
            answer = await self.api.call(
                "GET", "keys/log/consistency", params={"first": first, "second": second}
            )
        except ApiError as error:
            if error.code != "not_found":
                raise
            # The log no longer has a head this device accepted: it was rewritten or
            # emptied (a fork, or a server whose database was reset).
            raise ForkDetectedError(
                f"the log no longer has {second} entries, which this device saw"
            ) from None
        proof: list[str] = answer["proof"]
        return proof

    def gossip(self) -> tuple[int, bytes] | None:
        """(size, root) of the largest head, for other devices and members to check."""
        largest = self.largest
        return None if largest is None else (largest.size, largest.root)

    async def observe_gossip(self, size: int, root: bytes) -> None:
        """Check a head another device or member saw against this view; raise
        ForkDetectedError if they cannot both be true. A larger head that passes every
        check (signed, cosigned, fresh) becomes the largest."""
        largest = self.largest
        if largest is not None and size == largest.size:
            if root != largest.root:
                raise ForkDetectedError(f"another device saw a different tree of size {size}")
            return
        answer = await self.api.call("GET", "keys/log/tree-head", params={"size": size})
        try:
            signed = tree_heads.parse_tree_head(answer["tree_head"], log_public=self.log_public)
        except CryptoError as error:
            raise KeyTransparencyError(f"tree head refused: {error}") from None
        if signed.size != size or signed.root != root:
            raise ForkDetectedError(f"the log signs another tree of size {size} than someone saw")
        if largest is not None:
            await self._link(signed, largest)
        if largest is None or size > largest.size:
            try:
                await self.accept(answer["tree_head"], answer.get("cosignatures", []))
            except ForkDetectedError:
                raise
            except KeyTransparencyError:
                pass  # consistent, but not fresh or cosigned enough to be our view

    # Monitor ----------------------------------------------------------------------

    async def audit(self, own_labels: set[bytes]) -> AuditedEntries:
        """Refresh the head, then download every entry up to the largest accepted head,
        recompute the root, and collect the entries under ``own_labels``."""
        info = await self.api.call("GET", "keys/log")
        refused = ""
        try:
            await self.accept(info["tree_head"], info.get("cosignatures", []))
        except ForkDetectedError:
            raise
        except KeyTransparencyError as error:
            refused = str(error)  # not acceptable: audit up to the largest we have
        target = self.largest
        if target is None:
            return AuditedEntries(size=0, own=[], refused=refused)
        labels_seen = sorted(b64u(label) for label in own_labels)
        if self.data.get("own_labels") != labels_seen:  # new labels: audit from the start
            self.data.update(own_labels=labels_seen, monitor={"size": 0, "edge": []})
            self.data["own_entries"] = []
        tree = merkle.CompactTree.from_json(self.data.get("monitor", {"size": 0, "edge": []}))
        own = [(int(i), leaf.encode("utf-8")) for i, leaf in self.data.get("own_entries", [])]
        while tree.size < target.size:
            end = min(target.size, tree.size + PAGE)
            page = await self.api.call(
                "GET", "keys/log/entries", params={"start": tree.size, "end": end}
            )
            if not page["entries"]:
                raise KeyTransparencyError("the log withholds entries of its own head")
            for item in page["entries"]:
                leaf = item["entry"].encode("utf-8")
                if item["index"] != tree.size:
                    raise KeyTransparencyError("the log skipped an entry")
                tree.append(merkle.leaf_hash(leaf))
                try:
                    label = transparency.entry_label(leaf)
                except CryptoError:
                    raise KeyTransparencyError("a log entry has no label") from None
                if label in own_labels:
                    own.append((item["index"], leaf))
        if tree.root() != target.root:
            raise ForkDetectedError("the log's entries do not match its signed head")
        self.data["monitor"] = tree.to_json()
        self.data["own_entries"] = [[i, leaf.decode("utf-8")] for i, leaf in own]
        return AuditedEntries(size=target.size, own=own, refused=refused)
