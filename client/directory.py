"""Verifying keys against the key-transparency log before trusting them.

* Tree heads: signed by the pinned log key (pinned at first use, or given), and each
  new head must be consistent with the last one this device saw.
* A practitioner's devices: every certificate and revocation the server returns must
  be included in a verified tree head; a device counts only while certified and not
  revoked, and only in the role its certificate's ``kind`` gives it: ``device`` for a
  member's device, ``archiver`` for an organisation's archiver.
* Monitoring: a device audits every log entry since its last check (recomputing the
  root from the entries) and reports certificates for its own national id that it does
  not know — a device the server added behind the practitioner's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.api import ApiError, RestApi
from e2ee import merkle, transparency
from e2ee.encoding import b64u, unb64u
from e2ee.errors import CryptoError
from e2ee.keys import PublicDeviceKeys
from e2ee.state import RoomDevice


class KeyTransparencyError(Exception):
    """The server's answer does not match its own log: do not trust it."""


_ROLE: dict[str, str] = {"device": "a member's device", "archiver": "an archiver"}


def certified_role(kind: transparency.DeviceKind) -> str:
    """How a certificate kind reads in a message: "a member's device", "an archiver"."""
    return _ROLE[kind]


@dataclass(frozen=True, slots=True)
class VerifiedDevice:
    national_id: str
    device: int
    keys: PublicDeviceKeys
    index: int
    kind: transparency.DeviceKind = "device"


@dataclass(frozen=True, slots=True)
class RoomArchiver:
    """A room's archiver, proven in the log with kind ``archiver``. ``name`` is the
    organisation's name as the server's directory gives it (like practitioners' names);
    ``structure_id`` its IdNat_Struct, from its identity ``org:<IdNat_Struct>``."""

    national_id: str
    device: int
    structure_id: str
    name: str


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

    async def devices_of(
        self, national_id: str, *, kind: transparency.DeviceKind = "device"
    ) -> dict[int, VerifiedDevice]:
        """The certified, unrevoked devices of ``kind`` of a practitioner (or of an
        organisation, for ``archiver``), each proven in the log."""
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
                        kind=record.kind,
                    )
        except CryptoError as error:
            raise KeyTransparencyError(f"log entry refused: {error}") from None
        return {
            number: device
            for number, device in certified.items()
            if (number, device.keys.sign_key) not in revoked and device.kind == kind
        }

    async def archiver_device(self, organisation: str) -> RoomDevice:
        """The organisation's archiver device to name in a room: its newest certified,
        unrevoked archiver."""
        found = await self.devices_of(organisation, kind="archiver")
        if not found:
            raise KeyTransparencyError(f"{organisation} has no certified archiver")
        newest = max(found.values(), key=lambda d: d.index)
        return RoomDevice(national_id=organisation, device=newest.device, keys=newest.keys)

    async def archiver_of(self, archiver: RoomDevice) -> RoomArchiver:
        """Prove that a room's archiver is an organisation's archiver in the log (raise
        KeyTransparencyError otherwise, e.g. a practitioner's device passed off as one)
        and name it."""
        await self.check_device(
            archiver.national_id, archiver.device, archiver.keys, kind="archiver"
        )
        try:
            entry = await self.api.call("GET", f"directory/practitioners/{archiver.national_id}")
            name = str(entry["last_name"]) or archiver.national_id
        except ApiError:
            name = archiver.national_id
        return RoomArchiver(
            national_id=archiver.national_id,
            device=archiver.device,
            structure_id=archiver.national_id.removeprefix("org:"),
            name=name,
        )

    async def check_device(
        self,
        national_id: str,
        device: int,
        keys: PublicDeviceKeys,
        *,
        kind: transparency.DeviceKind = "device",
    ) -> None:
        """Raise unless the log certifies exactly these keys for this device now, with
        this kind."""
        found = (await self.devices_of(national_id, kind=kind)).get(device)
        if found is None or found.keys != keys:
            raise KeyTransparencyError(
                f"device {device} of {national_id} is not certified as {certified_role(kind)}"
            )

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
