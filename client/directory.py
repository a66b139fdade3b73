"""Verifying keys against the key-transparency log before trusting them.

* Tree heads: signed by the pinned log key (pinned at first use, or given), and each
  new head must be consistent with the last one this device saw.
* A practitioner's devices: every certificate and revocation the server returns must
  be included in a verified tree head; a device counts only while certified and not
  revoked.
* Monitoring: a device audits every log entry since its last check (recomputing the
  root from the entries) and reports certificates for its own national id that it does
  not know — a device the server added behind the practitioner's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.api import RestApi
from e2ee import merkle, transparency
from e2ee.encoding import b64u, unb64u
from e2ee.errors import CryptoError
from e2ee.keys import PublicDeviceKeys


class KeyTransparencyError(Exception):
    """The server's answer does not match its own log: do not trust it."""


@dataclass(frozen=True, slots=True)
class VerifiedDevice:
    national_id: str
    device: int
    keys: PublicDeviceKeys
    index: int


class KeyDirectory:
    """Per-device view of the log. ``data`` is the part of the key store it keeps."""

    def __init__(self, api: RestApi, data: dict[str, Any]) -> None:
        self.api = api
        self.data = data

    @property
    def log_public(self) -> bytes:
        return unb64u(self.data["log_key"])

    async def pin_log_key(self, expected: bytes | None = None) -> None:
        """Pin the log key (trust on first use unless ``expected`` is given)."""
        info = await self.api.call("GET", "keys/log")
        served = unb64u(info["log_key"], length=32)
        if expected is not None and served != expected:
            raise KeyTransparencyError("the server's log key is not the expected one")
        if "log_key" in self.data and unb64u(self.data["log_key"]) != served:
            raise KeyTransparencyError("the server's log key changed")
        self.data["log_key"] = b64u(served)
        await self.accept_tree_head(info["tree_head"])

    async def accept_tree_head(self, value: Any) -> transparency.TreeHead:
        """Verify a signed head and its consistency with the last one seen; remember it."""
        try:
            head = transparency.parse_tree_head(value, log_public=self.log_public)
            last_value = self.data.get("tree_head")
            if last_value is not None:
                last = transparency.parse_tree_head(last_value, log_public=self.log_public)
                if head.size < last.size:
                    older = await self.api.call(
                        "GET", "keys/log/tree-head", params={"size": head.size}
                    )
                    if (
                        transparency.parse_tree_head(older["tree_head"], log_public=self.log_public)
                        != head
                    ):
                        raise KeyTransparencyError("two different heads for one size")
                    proof = await self._consistency(head.size, last.size)
                    transparency.check_consistency(old=head, new=last, proof=proof)
                    return head
                proof = await self._consistency(last.size, head.size)
                transparency.check_consistency(old=last, new=head, proof=proof)
        except CryptoError as error:
            raise KeyTransparencyError(f"tree head refused: {error}") from None
        self.data["tree_head"] = value
        return head

    async def _consistency(self, first: int, second: int) -> list[str]:
        answer = await self.api.call(
            "GET", "keys/log/consistency", params={"first": first, "second": second}
        )
        proof: list[str] = answer["proof"]
        return proof

    async def devices_of(self, national_id: str) -> dict[int, VerifiedDevice]:
        """The practitioner's certified, unrevoked devices, each proven in the log."""
        answer = await self.api.call("GET", f"keys/practitioners/{national_id}")
        head = await self.accept_tree_head(answer["tree_head"])
        certified: dict[int, VerifiedDevice] = {}
        revoked: set[tuple[int, bytes]] = set()
        try:
            for item in answer["entries"]:
                leaf = item["entry"].encode("utf-8")
                transparency.check_inclusion(
                    leaf=leaf, index=item["index"], proof=item["proof"], head=head
                )
                record = transparency.parse_log_entry(leaf, log_public=self.log_public)
                if record.national_id != national_id:
                    raise KeyTransparencyError("an entry for someone else")
                if isinstance(record, transparency.Revocation):
                    revoked.add((record.device, record.sign_key))
                else:
                    certified[record.device] = VerifiedDevice(
                        national_id=national_id,
                        device=record.device,
                        keys=record.keys,
                        index=item["index"],
                    )
        except CryptoError as error:
            raise KeyTransparencyError(f"log entry refused: {error}") from None
        return {
            number: device
            for number, device in certified.items()
            if (number, device.keys.sign_key) not in revoked
        }

    async def check_device(self, national_id: str, device: int, keys: PublicDeviceKeys) -> None:
        """Raise unless the log certifies exactly these keys for this device now."""
        found = (await self.devices_of(national_id)).get(device)
        if found is None or found.keys != keys:
            raise KeyTransparencyError(f"device {device} of {national_id} is not certified")

    async def monitor(self, *, national_id: str, known_devices: set[int]) -> list[int]:
        """Audit the log since the last check; return devices certified for
        ``national_id`` that are not in ``known_devices``."""
        info = await self.api.call("GET", "keys/log")
        head = await self.accept_tree_head(info["tree_head"])
        tree = merkle.CompactTree.from_json(self.data.get("monitor", {"size": 0, "edge": []}))
        unknown: list[int] = []
        while tree.size < head.size:
            end = min(head.size, tree.size + 1000)
            page = await self.api.call(
                "GET", "keys/log/entries", params={"start": tree.size, "end": end}
            )
            for item in page["entries"]:
                leaf = item["entry"].encode("utf-8")
                if item["index"] != tree.size:
                    raise KeyTransparencyError("the log skipped an entry")
                tree.append(merkle.leaf_hash(leaf))
                try:
                    record = transparency.parse_log_entry(leaf, log_public=self.log_public)
                except CryptoError as error:
                    raise KeyTransparencyError(f"log entry refused: {error}") from None
                is_new = isinstance(record, transparency.Certificate)
                if (
                    is_new
                    and record.national_id == national_id
                    and record.device not in known_devices
                ):
                    unknown.append(record.device)
        if tree.root() != head.root:
            raise KeyTransparencyError("the log's entries do not match its signed head")
        self.data["monitor"] = tree.to_json()
        return unknown
